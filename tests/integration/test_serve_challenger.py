"""`mlnb serve ... --challenger models:/NAME@challenger --traffic P | --shadow` against a real registry: the
share of traffic, sticky routing keys, shadow copies that never change or slow an answer, a challenger that
fails to load, both aliases hot-swapped under load (one process and two workers), the challenger retired
when its alias is removed; `/version`, `/metrics` and the prediction log say which variant answered."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlnb.core.integrity import HASH_TAG, model_sha256
from tests.conftest import run_mlnb
from tests.serving_fixtures import (
    MODEL_NAME,
    breast_cancer,
    free_port,
    register_versions,
    save_misbehaving_model,
    start_mlnb_serve,
    stop,
    train,
    wait_ready,
)

pytestmark = pytest.mark.integration
CHAMPION = f"models:/{MODEL_NAME}@champion"
CHALLENGER = f"models:/{MODEL_NAME}@challenger"
Cs = [1.0, 0.0005, 0.01, 1.0]  # v1 champion, v2 challenger (answers differ), v3 another, v4 broken


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-challenger")
    (root / "pipeline.yaml").write_text("tasks: []\n")
    (root / "env.yaml").write_text(f"mlflow:\n  experiment: serve-test\n  model_name: {MODEL_NAME}\n")
    client = register_versions(root, Cs)
    broken = Path(urlparse(client.get_model_version_download_uri(MODEL_NAME, "4")).path)
    (broken / "model.skops").write_bytes(b"not a skops file")
    client.set_model_version_tag(MODEL_NAME, "4", HASH_TAG, model_sha256(broken))
    return root, client


def _body() -> tuple[bytes, list, list]:
    """Two rows: the first scored differently by v1 and v2, the second the same (agreement: 1 row of 2)."""
    X, _ = breast_cancer()
    a, b = train(Cs[0]).predict(X), train(Cs[1]).predict(X)
    rows = [X[a != b].head(1), X[a == b].head(1)]
    import pandas as pd

    both = pd.concat(rows)
    body = json.dumps({"dataframe_split": {"columns": list(X.columns), "data": both.to_numpy().tolist()}})
    return body.encode(), train(Cs[0]).predict(both).tolist(), train(Cs[1]).predict(both).tolist()


def _post(conn: http.client.HTTPConnection, body: bytes, key: str | None = None) -> tuple[int, dict, object, float]:
    headers = {"Content-Type": "application/json", **({"X-Routing-Key": key} if key else {})}
    start = time.perf_counter()
    conn.request("POST", "/invocations", body, headers)
    resp = conn.getresponse()
    data = json.loads(resp.read())
    return resp.status, dict(resp.getheaders()), data.get("predictions"), time.perf_counter() - start


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    return conn.getresponse().read().decode()


def _metrics(port: int) -> dict[tuple[str, str], float]:
    """(sample name, variant) -> value, summed over workers and the other labels (no histogram buckets)."""
    out: Counter = Counter()
    for family in text_string_to_metric_families(_get(port, "/metrics")):
        for s in family.samples:
            if "le" not in s.labels and s.labels.get("endpoint", "/invocations") == "/invocations":
                out[(s.name, s.labels.get("variant", ""))] += s.value
    return out


def _wait_for(predicate, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _serving(port: int) -> dict:
    return json.loads(_get(port, "/version"))


def _many(port: int, body: bytes, n: int, threads: int = 4, keys: list[str] | None = None) -> list[tuple]:
    """``n`` requests from ``threads`` clients (keep-alive); every answer with its key."""
    answers: list[tuple] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine = []
        for j in range(i, n, threads):
            key = keys[j % len(keys)] if keys else None
            mine.append((key, *_post(conn, body, key)))
        with lock:
            answers.extend(mine)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return answers


def test_a_share_of_traffic_goes_to_the_challenger_sticky_by_key_and_every_answer_says_who(project) -> None:
    root, client = project
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    client.set_registered_model_alias(MODEL_NAME, "challenger", "2")
    body, v1, v2 = _body()
    port = free_port()
    predlog = root / "split.jsonl"
    proc = start_mlnb_serve(CHAMPION, port, root, "--challenger", CHALLENGER, "--traffic", "20",
                            "--prediction-log", str(predlog), log=root / "split.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        info = _serving(port)
        assert info["model_version"] == "1" and info["variants"]["challenger"]["model_version"] == "2"
        assert info["split"] == {"traffic_percent": 20.0, "shadow": False, "routing_header": "X-Routing-Key",
                                 "challenger_serving": True}
        answers = _many(port, body, 5000)
        assert {a[1] for a in answers} == {200}
        by_variant = Counter(a[2]["X-Model-Variant"] for a in answers)
        assert 0.17 <= by_variant["challenger"] / 5000 <= 0.23, by_variant
        for _key, _status, headers, predictions, _s in answers:  # the header names the version that answered
            assert predictions == (v2 if headers["X-Model-Version"] == "2" else v1)
            assert headers["X-Model-Version"] == ("2" if headers["X-Model-Variant"] == "challenger" else "1")

        keys = [f"user-{i}" for i in range(300)]
        keyed = _many(port, body, 1500, keys=keys)
        seen: dict[str, set[str]] = {}
        for key, _status, headers, _p, _s in keyed:
            seen.setdefault(key, set()).add(headers["X-Model-Variant"])
        assert all(len(v) == 1 for v in seen.values())  # a key never switches variant
        assert 0.1 < sum(v == {"challenger"} for v in seen.values()) / len(keys) < 0.3

        sent = Counter(a[2]["X-Model-Variant"] for a in [*answers, *keyed])
        _wait_for(lambda: _metrics(port)[("mlnb_serve_compared_rows_total", "")] == 2 * sent["challenger"],
                  what="every challenger answer compared with the champion")
        m = _metrics(port)
        assert m[("mlnb_serve_requests_total", "challenger")] == sent["challenger"]
        assert m[("mlnb_serve_requests_total", "champion")] == sent["champion"]
        assert m[("mlnb_serve_agreeing_rows_total", "")] == sent["challenger"]  # the second row of each
        assert m[("mlnb_serve_request_duration_seconds_count", "challenger")] == sent["challenger"]
        status = run_mlnb(root, "canary", "status", "--url", f"http://127.0.0.1:{port}", "--json")
        assert status.returncode == 0, status.stderr
        figures = json.loads(status.stdout)
        by = {v["variant"]: v for v in figures["variants"]}
        assert (by["champion"]["requests"], by["challenger"]["requests"]) == (sent["champion"], sent["challenger"])
        assert (by["champion"]["version"], by["challenger"]["version"]) == ("1", "2")
        assert by["challenger"]["error_rate"] == 0 and 0 < by["challenger"]["p50_ms"] <= by["challenger"]["p99_ms"]
        assert figures["agreement"] == 0.5 and figures["split"]["traffic_percent"] == 20
        table = run_mlnb(root, "canary", "status", "--url", f"http://127.0.0.1:{port}").stdout
        assert "challenger  2" in table and "agreement: 50.00 %" in table and "20 % to the challenger" in table
    finally:
        assert stop(proc) == 0
    records = [json.loads(line) for line in predlog.read_text().splitlines()]
    assert Counter(r["variant"] for r in records) == sent
    assert {r["model_version"] for r in records if r["variant"] == "challenger"} == {"2"}


@pytest.mark.parametrize("mode", ["sleep", "raise"])
def test_shadow_answers_as_the_champion_alone_whatever_the_challenger_does(project, tmp_path: Path,
                                                                            mode: str) -> None:
    root, client = project
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    body, v1, _v2 = _body()
    challenger = save_misbehaving_model(tmp_path / mode, mode)
    port = free_port()
    proc = start_mlnb_serve(CHAMPION, port, root, "--challenger", str(challenger), "--shadow",
                            "--allow-unsafe-pickle", log=root / f"shadow-{mode}.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        assert _serving(port)["variants"]["challenger"]["model_version"] == mode
        answers = _many(port, body, 200, threads=2)
        assert {a[1] for a in answers} == {200}
        assert all(a[3] == v1 and a[2]["X-Model-Variant"] == "champion" for a in answers)
        assert max(a[4] for a in answers) < 0.5  # a 1 s challenger is never waited for
        m = _metrics(port)
        if mode == "raise":
            _wait_for(lambda: _metrics(port)[("mlnb_serve_scoring_errors_total", "challenger")] > 0,
                      what="the challenger's errors counted")
            assert m[("mlnb_serve_scoring_errors_total", "champion")] == 0
        else:  # the challenger's slowness shows in its own latency, not in the answers'
            _wait_for(lambda: _metrics(port)[("mlnb_serve_request_duration_seconds_count", "challenger")] > 0,
                      what="the challenger's copies scored")
            m = _metrics(port)
            assert m[("mlnb_serve_request_duration_seconds_sum", "challenger")] >= \
                m[("mlnb_serve_request_duration_seconds_count", "challenger")] * 1.0
        assert m[("mlnb_serve_requests_total", "champion")] == 200
    finally:
        assert stop(proc) == 0


def test_a_challenger_that_fails_to_load_leaves_the_champion_answering_everything(project) -> None:
    root, client = project
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    try:
        client.delete_registered_model_alias(MODEL_NAME, "challenger")
    except Exception:  # not set
        pass
    body, v1, v2 = _body()
    port = free_port()
    log = root / "broken.log"
    proc = start_mlnb_serve(CHAMPION, port, root, "--challenger", CHALLENGER, "--traffic", "50",
                            "--poll-interval", "0.3", log=log)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)  # no challenger alias yet: the champion alone
        assert "@challenger is not set: the champion answers every request until it is" in log.read_text()
        client.set_registered_model_alias(MODEL_NAME, "challenger", "4")  # unloadable
        _wait_for(lambda: "version 4 not served, still serving none (challenger)" in log.read_text(),
                  what="version 4 refused")
        assert _serving(port)["variants"]["challenger"] is None
        answers = _many(port, body, 100, threads=2)
        assert all(a[1] == 200 and a[3] == v1 for a in answers)
        client.set_registered_model_alias(MODEL_NAME, "challenger", "2")  # a good one: picked up
        _wait_for(lambda: _serving(port)["split"]["challenger_serving"], what="the new challenger loaded")
        assert any(a[3] == v2 for a in _many(port, body, 100, threads=2))
    finally:
        assert stop(proc) == 0


def test_both_aliases_swap_under_load_and_removing_the_challenger_retires_it(project) -> None:
    """Two workers: the supervisor fetches each new version once and every worker swaps it."""
    root, client = project
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    client.set_registered_model_alias(MODEL_NAME, "challenger", "2")
    body, _v1, _v2 = _body()
    port = free_port()
    proc = start_mlnb_serve(CHAMPION, port, root, "--challenger", CHALLENGER, "--traffic", "50", "--workers", "2",
                            "--poll-interval", "0.3", log=root / "swap.log")

    def versions() -> set[tuple[str, str, str]]:
        seen = set()
        for _ in range(12):
            for family in text_string_to_metric_families(_get(port, "/metrics")):
                if family.name == "mlnb_serve_model_info":
                    seen |= {(s.labels["worker"], s.labels["variant"], s.labels["version"]) for s in family.samples}
        return seen

    answers: list[tuple] = []
    stop_load = threading.Event()

    def load() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop_load.is_set():
            try:
                answers.append(_post(conn, body, None))
            except Exception as exc:  # a dropped connection is a failed request
                answers.append((0, {}, repr(exc), 0.0))
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        _wait_for(lambda: versions() == {(w, v, n) for w in "01" for v, n in (("champion", "1"), ("challenger", "2"))},
                  what="both workers serving v1 and v2")
        clients = [threading.Thread(target=load) for _ in range(3)]
        for t in clients:
            t.start()
        try:
            client.set_registered_model_alias(MODEL_NAME, "challenger", "3")
            _wait_for(lambda: ("0", "challenger", "3") in versions() and ("1", "challenger", "3") in versions(),
                      what="the challenger swapped to v3 in both workers")
            client.set_registered_model_alias(MODEL_NAME, "champion", "2")
            _wait_for(lambda: {("0", "champion", "2"), ("1", "champion", "2")} <= versions(),
                      what="the champion swapped to v2 in both workers")
            client.delete_registered_model_alias(MODEL_NAME, "challenger")
            _wait_for(lambda: not any(v == "challenger" for _w, v, _n in versions()), what="the challenger retired")
            time.sleep(0.5)
        finally:
            stop_load.set()
            for t in clients:
                t.join()
        assert len(answers) > 50 and [a for a in answers if a[0] != 200] == []  # zero failed requests
        assert {a[1]["X-Model-Version"] for a in answers} >= {"1", "2", "3"}
        assert answers[-1][1]["X-Model-Variant"] == "champion"
        after = _many(port, body, 60, threads=2)
        assert {(a[2]["X-Model-Variant"], a[2]["X-Model-Version"]) for a in after} == {("champion", "2")}
    finally:
        assert stop(proc) == 0


def test_bad_combinations_are_one_line(project) -> None:
    import subprocess
    import sys

    root, _client = project
    for args, said in ((["--challenger", CHALLENGER], "either --traffic PERCENT or --shadow"),
                       (["--traffic", "10"], "need --challenger"),
                       (["--challenger", CHALLENGER, "--traffic", "10", "--shadow"], "either --traffic"),
                       (["--challenger", CHAMPION, "--shadow"], "the same model as MODEL_URI"),
                       (["--challenger", CHALLENGER, "--traffic", "120"], "--traffic")):
        proc = subprocess.run([sys.executable, "-m", "mlnb.cli", "serve", CHAMPION, "--port", str(free_port()), *args],
                              cwd=root, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        last = proc.stderr.strip().splitlines()[-1]  # click's usage errors print the usage first
        assert said in last, (args, proc.stderr)


def test_feedback_labels_give_live_quality_per_variant_and_monitor_compares_them(project, tmp_path: Path) -> None:
    """Labels posted to /feedback join the answers they belong to: live accuracy per variant and version on
    /metrics, and `mlnb monitor --ab` on the prediction log compares champion and challenger."""
    root, client = project
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    client.set_registered_model_alias(MODEL_NAME, "challenger", "2")
    X, y = breast_cancer()
    X.assign(diagnosis=y).to_parquet(tmp_path / "reference.parquet")
    (root / "env.yaml").write_text(f"mlflow:\n  experiment: serve-test\n  model_name: {MODEL_NAME}\n"
                                   "data:\n  target: diagnosis\nmonitor:\n  min_rows: 100\n")
    log = tmp_path / "ab.jsonl"
    port = free_port()
    proc = start_mlnb_serve(CHAMPION, port, root, "--challenger", CHALLENGER, "--traffic", "50",
                            "--prediction-log", str(log), log=root / "feedback.log")
    rows = X.sample(400, random_state=11)
    answers = []
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(len(rows)):
            part = rows.iloc[[i]]
            body = json.dumps({"dataframe_split": {"columns": list(part.columns), "data": part.to_numpy().tolist()}})
            status, headers, predictions, _s = _post(conn, body.encode())
            assert status == 200
            answers.append((headers["X-Request-Id"], headers["X-Model-Variant"], predictions[0], int(y[part.index[0]])))
        records = [{"request_id": rid, "label": label} for rid, _v, _p, label in answers]
        records += [{"request_id": f"{i:032x}", "label": 1} for i in range(5)] + records[:5]  # unknown, duplicates
        conn.request("POST", "/feedback", json.dumps({"feedback": records}), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read()) == {"matched": 400, "unknown": 5, "duplicate": 5,
                                                                  "logged": True}
        conn.request("POST", "/feedback", json.dumps({"feedback": [{"request_id": "nope", "label": 1}]}))
        bad = conn.getresponse()
        assert bad.status == 400 and "feedback[0].request_id" in json.loads(bad.read())["message"]
        expected = {}
        for variant in ("champion", "challenger"):
            mine = [(p, label) for _r, v, p, label in answers if v == variant]
            expected[variant] = sum(p == label for p, label in mine) / len(mine)
        live = {(s.labels["variant"], s.labels["version"]): s.value
                for f in text_string_to_metric_families(_get(port, "/metrics")) for s in f.samples
                if s.name == "mlnb_serve_live_metric" and s.labels["metric"] == "accuracy"}
        assert live[("champion", "1")] == pytest.approx(expected["champion"])
        assert live[("challenger", "2")] == pytest.approx(expected["challenger"])
        status = json.loads(run_mlnb(root, "canary", "status", "--url", f"http://127.0.0.1:{port}", "--json").stdout)
        by = {v["variant"]: v["live"] for v in status["variants"]}
        assert by["champion"]["accuracy"] == pytest.approx(expected["champion"], abs=1e-5)
        assert by["challenger"]["labelled_rows"] == sum(v == "challenger" for _r, v, _p, _l in answers)
    finally:
        assert stop(proc) == 0
    res = run_mlnb(root, "monitor", "--log", str(log), "--reference", str(tmp_path / "reference.parquet"), "--ab",
                   "--json", "--no-mlflow")
    assert res.returncode in (0, 1), res.stderr
    quality = json.loads(res.stdout)["live"]
    assert (quality["matched"], quality["unknown"], quality["duplicate"]) == (400, 5, 5)
    by = {(r["variant"], r["model_version"]): r for r in quality["by_version"]}
    assert by[("champion", "1")]["accuracy"] == pytest.approx(expected["champion"], abs=1e-6)
    assert by[("challenger", "2")]["accuracy"] == pytest.approx(expected["challenger"], abs=1e-6)
    assert quality["ab"]["accuracy_difference"] == pytest.approx(expected["challenger"] - expected["champion"],
                                                                 abs=1e-6)
    assert 0 <= quality["ab"]["p_value"] <= 1
    (root / "env.yaml").write_text(f"mlflow:\n  experiment: serve-test\n  model_name: {MODEL_NAME}\n")
