"""`mlnb serve models:/<name>@champion` against a real registry: hot swap under load, versions that fail
their hash or fail to load, workers, a real `mlflow server`, and `mlnb fetch-model`."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from mlnb.core.integrity import HASH_TAG, model_sha256
from tests.serving_fixtures import (
    MODEL_NAME,
    REPO,
    breast_cancer,
    free_port,
    register_versions,
    start_mlflow_server,
    start_mlnb_serve,
    stop,
    train,
    wait_ready,
)

pytestmark = pytest.mark.integration
CHAMPION = f"models:/{MODEL_NAME}@champion"
Cs = [1.0, 0.0005, 1.0, 1.0]  # v1, v2 (other predictions), v3 (to tamper with), v4 (to break)


def _artifact_dir(client, version: str) -> Path:
    return Path(urlparse(client.get_model_version_download_uri(MODEL_NAME, version)).path)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-registry")
    (root / "pipeline.yaml").write_text("tasks: []\n")
    (root / "env.yaml").write_text(f"mlflow:\n  experiment: serve-test\n  model_name: {MODEL_NAME}\n")
    client = register_versions(root, Cs)
    weights = _artifact_dir(client, "3") / "model.skops"  # v3: changed after export, tag left as it was
    weights.write_bytes(weights.read_bytes() + b"\0")
    broken = _artifact_dir(client, "4")  # v4: unloadable, with a hash tag that matches the broken files
    (broken / "model.skops").write_bytes(b"not a skops file")
    client.set_model_version_tag(MODEL_NAME, "4", HASH_TAG, model_sha256(broken))
    return root, client


def _rows():
    """Rows that v1 and v2 score differently (so a response tells which version answered)."""
    X, _ = breast_cancer()
    a, b = train(Cs[0]).predict(X), train(Cs[1]).predict(X)
    differ = X[a != b].head(5)
    assert len(differ) >= 2
    body = json.dumps({"dataframe_split": {"columns": list(X.columns), "data": differ.to_numpy().tolist()}})
    return body.encode(), train(Cs[0]).predict(differ).tolist(), train(Cs[1]).predict(differ).tolist()


def _get(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    return json.loads(conn.getresponse().read())


def _wait_for(predicate, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Load:
    """Clients posting the same rows without pause; every answer kept with the time it came back."""

    def __init__(self, port: int, body: bytes, clients: int = 4) -> None:
        self.port, self.body, self.stop = port, body, threading.Event()
        self.answers: list[list[tuple[float, int, object]]] = [[] for _ in range(clients)]
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _run(self, i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set():
            try:
                conn.request("POST", "/invocations", self.body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                self.answers[i].append((time.monotonic(), resp.status, json.loads(data).get("predictions")))
            except Exception as exc:  # a dropped connection is a failed request
                self.answers[i].append((time.monotonic(), 0, repr(exc)))
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)


def test_hot_swap_under_load_then_bad_versions_leave_the_old_one_serving(project) -> None:
    root, client = project
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    body, v1, v2 = _rows()
    port = free_port()
    log = root / "hot.log"
    proc = start_mlnb_serve(CHAMPION, port, root, "--poll-interval", "0.3", log=log)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        assert _get(port, "/version")["model_version"] == "1"
        with Load(port, body) as load:
            time.sleep(1.0)
            client.set_registered_model_alias(MODEL_NAME, "champion", "2")
            _wait_for(lambda: _get(port, "/version")["model_version"] == "2", what="the swap to version 2")
            time.sleep(1.0)
        answers = [a for per_client in load.answers for a in per_client]
        assert len(answers) > 50
        assert [a for a in answers if a[1] != 200] == []  # zero failed requests across the swap
        assert {json.dumps(a[2]) for a in answers} == {json.dumps(v1), json.dumps(v2)}
        for per_client in load.answers:  # each client sees v1 ... v1 v2 ... v2: one clean switch
            seen = [a[2] == v2 for a in per_client]
            assert seen == sorted(seen) and seen[0] is False and seen[-1] is True
        info = _get(port, "/version")
        assert info["alias"] == "champion" and info["build_run_id"] == ""  # registered outside a build
        assert info["artifact_sha256"] == client.get_model_version(MODEL_NAME, "2").tags[HASH_TAG]

        for bad, reason in (("3", "refusing to serve a model that changed after export"),
                            ("4", "the model failed to load")):
            client.set_registered_model_alias(MODEL_NAME, "champion", bad)
            _wait_for(lambda bad=bad: f"version {bad} not served, still serving 2" in log.read_text(),
                      what=f"version {bad} to be refused")
            assert reason in log.read_text()
            assert _get(port, "/version")["model_version"] == "2"
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
            assert json.loads(conn.getresponse().read())["predictions"] == v2
        metrics = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        metrics.request("GET", "/metrics")
        text = metrics.getresponse().read().decode()
        assert 'mlnb_serve_model_swaps_total{variant="champion",worker="0"} 1' in text
        assert 'mlnb_serve_model_swap_failures_total{variant="champion",worker="0"} 2' in text
        client.set_registered_model_alias(MODEL_NAME, "champion", "1")  # a good version after bad ones
        _wait_for(lambda: _get(port, "/version")["model_version"] == "1", what="the swap back to version 1")
    finally:
        assert stop(proc) == 0
    cache = root / ".mlnb" / "serve-cache"
    assert len(list(cache.iterdir())) == 0  # downloads of swapped-out and refused versions are removed


def test_serving_a_tampered_champion_is_refused_at_start(project) -> None:
    root, client = project
    client.set_registered_model_alias(MODEL_NAME, "champion", "3")
    result = subprocess.run([sys.executable, "-m", "mlnb.cli", "serve", "--port", str(free_port())], cwd=root,
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]  # one line
    assert f"{CHAMPION}: model files hash to sha256" in result.stderr and "refusing to serve" in result.stderr


def test_workers_all_swap(project) -> None:
    root, client = project
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    body, _v1, v2 = _rows()
    port = free_port()
    proc = start_mlnb_serve(CHAMPION, port, root, "--workers", "2", "--poll-interval", "0.3", log=root / "w.log")

    def versions() -> set[str]:
        seen = set()
        for _ in range(20):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/metrics")
            for line in conn.getresponse().read().decode().splitlines():
                if line.startswith("mlnb_serve_model_info"):
                    seen.add((line.split('worker="')[1][0], line.split('version="')[1].split('"')[0]))
        return seen

    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        _wait_for(lambda: versions() == {("0", "1"), ("1", "1")}, what="both workers on version 1")

        def one_scrape() -> set[str]:  # whichever worker answers, it reports every worker's series
            from prometheus_client.parser import text_string_to_metric_families

            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/metrics")
            families = list(text_string_to_metric_families(conn.getresponse().read().decode()))  # valid text
            return {s.labels["worker"] for f in families if f.name == "mlnb_serve_model_info" for s in f.samples}
        _wait_for(lambda: one_scrape() == {"0", "1"}, what="one scrape showing both workers")
        with Load(port, body, clients=4) as load:
            client.set_registered_model_alias(MODEL_NAME, "champion", "2")
            _wait_for(lambda: versions() == {("0", "2"), ("1", "2")}, what="both workers on version 2")
        answers = [a for per_client in load.answers for a in per_client]
        assert answers and [a for a in answers if a[1] != 200] == []
        assert answers[-1][2] == v2
        import psutil

        victim = psutil.Process(proc.pid).children()[0]
        victim.kill()  # its replacement must start on version 2, not the version the supervisor began with
        _wait_for(lambda: victim.pid not in {c.pid for c in psutil.Process(proc.pid).children()}
                  and len(psutil.Process(proc.pid).children()) == 2, what="the worker to be replaced")
        _wait_for(lambda: versions() == {("0", "2"), ("1", "2")}, what="the new worker on version 2")
    finally:
        assert stop(proc) == 0


def test_real_mlflow_server_fetch_model_and_pull_at_start(tmp_path: Path) -> None:
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_ready(uri, server, path="/health", timeout=120)
        client = register_versions(tmp_path / "proj", [1.0, 0.0005], tracking_uri=uri)
        client.set_registered_model_alias(MODEL_NAME, "champion", "1")
        env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": uri}
        fetched = subprocess.run([sys.executable, "-m", "mlnb.cli", "fetch-model", CHAMPION, str(tmp_path / "baked")],
                                 cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert fetched.returncode == 0, fetched.stderr
        info = json.loads((tmp_path / "baked" / "info.json").read_text())
        assert info["model_version"] == "1" and info["model_name"] == MODEL_NAME
        assert model_sha256(tmp_path / "baked" / "model") == info["artifact_sha256"]
        assert client.get_model_version(MODEL_NAME, "1").tags[HASH_TAG] == info["artifact_sha256"]
        again = subprocess.run([sys.executable, "-m", "mlnb.cli", "fetch-model", CHAMPION, str(tmp_path / "baked")],
                               cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 2 and "already exists" in again.stderr

        serve_port = free_port()
        proc = start_mlnb_serve(CHAMPION, serve_port, tmp_path, "--poll-interval", "0.3", env=env,
                                log=tmp_path / "serve.log")
        try:
            wait_ready(f"http://127.0.0.1:{serve_port}", proc)
            assert _get(serve_port, "/version")["model_version"] == "1"
            client.set_registered_model_alias(MODEL_NAME, "champion", "2")
            _wait_for(lambda: _get(serve_port, "/version")["model_version"] == "2", what="the swap through the server")
        finally:
            assert stop(proc) == 0
    finally:
        stop(server)


def test_runs_uri_and_pinned_versions_are_verified_and_never_swapped(project) -> None:
    root, client = project
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    run_id = client.get_model_version(MODEL_NAME, "2").run_id
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for uri, version in ((f"runs:/{run_id}/model", "2"), (f"models:/{MODEL_NAME}/2", "2")):
        port = free_port()
        proc = start_mlnb_serve(uri, port, root, "--poll-interval", "0.2", log=root / "pinned.log")
        try:
            wait_ready(f"http://127.0.0.1:{port}", proc)
            info = _get(port, "/version")
            assert (info["model_version"], info["run_id"], info["verified"], info["alias"]) == (version, run_id, True, "")
            client.set_registered_model_alias(MODEL_NAME, "champion", "2" if version == "1" else "1")
            time.sleep(1.0)  # five poll intervals: a pinned URI has nothing to watch
            assert _get(port, "/version")["model_version"] == version
        finally:
            assert stop(proc) == 0
    fetched = subprocess.run([sys.executable, "-m", "mlnb.cli", "fetch-model", f"runs:/{run_id}/model",
                              str(root / "from-run")], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads((root / "from-run" / "info.json").read_text())["run_id"] == run_id
