"""The serving service's pure parts: model hashes, model URIs, Prometheus text, the prediction log."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlnb.core.integrity import model_sha256, verify
from mlnb.errors import IntegrityError, UserInputError
from mlnb.serving.metrics import Metrics
from mlnb.serving.predlog import PredictionLog
from mlnb.serving.source import Identity, parse_uri


def _model_dir(tmp_path: Path) -> Path:
    d = tmp_path / "model"
    (d / "sub").mkdir(parents=True)
    (d / "MLmodel").write_text("flavors: {}\n")
    (d / "model.skops").write_bytes(b"\x00weights")
    (d / "sub" / "x.txt").write_text("x")
    return d


def test_model_hash_covers_bytes_and_names_but_not_mlflows_download_metadata(tmp_path: Path) -> None:
    d = _model_dir(tmp_path)
    digest = model_sha256(d)
    (d / "registered_model_meta").write_text("model_name: m\nmodel_version: '3'\n")  # written on download
    assert model_sha256(d) == digest
    (d / "model.skops").write_bytes(b"\x00weightz")
    assert model_sha256(d) != digest
    (d / "model.skops").write_bytes(b"\x00weights")
    (d / "sub" / "x.txt").rename(d / "sub" / "y.txt")
    assert model_sha256(d) != digest
    (d / "sub" / "y.txt").rename(d / "sub" / "x.txt")
    assert verify(d, digest, "m") == digest
    (d / "extra").write_text("")
    with pytest.raises(IntegrityError, match="m: model files hash to sha256 .* recorded .*refusing to serve"):
        verify(d, digest, "m")


@pytest.mark.parametrize(("uri", "fields"), [
    ("models:/breast-cancer-classifier@champion", {"name": "breast-cancer-classifier", "alias": "champion"}),
    ("models:/m/12", {"name": "m", "version": "12"}),
    ("runs:/" + "a" * 32 + "/model", {"run_id": "a" * 32, "path": "model"}),
    ("/opt/serving", {"path": "/opt/serving"}),
    ("file:///opt/serving", {"path": "/opt/serving"}),
    ("products/export/model", {"path": "products/export/model"}),
])
def test_model_uris(uri: str, fields: dict[str, str]) -> None:
    ref = parse_uri(uri)
    for key, value in fields.items():
        assert getattr(ref, key) == value
    assert ref.watchable == bool(fields.get("alias"))


@pytest.mark.parametrize("uri", ["models:/", "models:/m", "models:/m@", "models:/m/x", "models:/../x@a",
                                 "runs:/abc/model", "runs:/" + "a" * 32 + "/../../etc", "s3://bucket/model",
                                 "http://example.com/model"])
def test_bad_model_uris(uri: str) -> None:
    with pytest.raises(UserInputError, match="model URI"):
        parse_uri(uri)


def test_metrics_are_valid_prometheus_text() -> None:
    m = Metrics("0")
    m.model = ("clf", "3")
    m.request("/invocations", 200)
    m.request("/invocations", 200)
    m.request("/invocations", 400)
    for seconds in (0.0004, 0.003, 0.003, 20.0):
        m.scored(seconds, rows=10)
    m.count("swaps")
    families = {f.name: f for f in text_string_to_metric_families(m.render())}
    requests = {(s.labels["endpoint"], s.labels["status"]): s.value for s in families["mlnb_serve_requests"].samples}
    assert requests == {("/invocations", "200"): 2, ("/invocations", "400"): 1}
    hist = {s.labels.get("le"): s.value for s in families["mlnb_serve_request_duration_seconds"].samples
            if s.name.endswith("_bucket")}
    assert hist["0.001"] == 1 and hist["0.005"] == 3 and hist["10.0"] == 3 and hist["+Inf"] == 4
    assert families["mlnb_serve_rows_scored"].samples[0].value == 40
    assert families["mlnb_serve_model_swaps"].samples[0].value == 1
    info = families["mlnb_serve_model_info"].samples[0]
    assert info.labels == {"name": "clf", "version": "3", "variant": "champion", "worker": "0"}


def test_metrics_are_kept_per_variant() -> None:
    m = Metrics("1")
    m.models["challenger"] = ("clf", "4")
    m.request("/invocations", 200, "challenger")
    m.request("/health", 200)
    m.scored(0.002, 5, "challenger")
    m.scored_error("challenger")
    m.compared(5, 4)
    m.count("swap_failures", variant="challenger")
    m.count("shadow_dropped")
    families = {f.name: f for f in text_string_to_metric_families(m.render())}
    by = {(s.name, s.labels.get("variant"), s.labels.get("endpoint")): s.value for f in families.values()
          for s in f.samples if "le" not in s.labels}
    assert by[("mlnb_serve_requests_total", "challenger", "/invocations")] == 1
    assert by[("mlnb_serve_requests_total", "", "/health")] == 1
    assert by[("mlnb_serve_request_duration_seconds_count", "challenger", None)] == 1
    assert by[("mlnb_serve_request_duration_seconds_count", "champion", None)] == 0
    assert by[("mlnb_serve_scoring_errors_total", "challenger", None)] == 1
    assert by[("mlnb_serve_model_swap_failures_total", "challenger", None)] == 1
    assert by[("mlnb_serve_compared_rows_total", None, None)] == 5
    assert by[("mlnb_serve_agreeing_rows_total", None, None)] == 4
    assert by[("mlnb_serve_shadow_dropped_total", None, None)] == 1
    info = {s.labels["variant"]: s.labels["version"] for s in families["mlnb_serve_model_info"].samples}
    assert info == {"champion": "", "challenger": "4"}


def test_metrics_labels_are_escaped() -> None:
    m = Metrics('w"1\n')
    families = list(text_string_to_metric_families(m.render()))
    assert families[0].name == "mlnb_serve_requests"
    assert 'worker="w\\"1\\n"' in m.render()


def test_metrics_are_thread_safe() -> None:
    m = Metrics()
    threads = [threading.Thread(target=lambda: [m.scored(0.001, 1) for _ in range(2000)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.latency_count["champion"] == 16000 and m.rows["champion"] == 16000


def _identity() -> Identity:
    return Identity("models:/m@champion", model_name="m", model_version="2")


def test_prediction_log_writes_whole_lines_and_caps_rows(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "p.jsonl", Metrics(), sample_rate=1.0, max_rows=3)
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [5.0, 6.0, 7.0, 8.0]})
    log.offer("r1", _identity(), frame, pd.Series([0, 1, 0, 1]).to_numpy())
    log.offer("r2", _identity(), frame.head(1), pd.Series([1]).to_numpy())
    log.close()
    lines = [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert [x["request_id"] for x in lines] == ["r1", "r2"]
    assert lines[0]["rows"] == 4 and lines[0]["logged_rows"] == 3
    assert lines[0]["inputs"] == [[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]] and lines[0]["predictions"] == [0, 1, 0]
    assert lines[0]["columns"] == ["a", "b"] and lines[0]["model_version"] == "2"
    assert lines[0]["time"].endswith("Z")


def test_prediction_log_samples(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "p.jsonl", Metrics(), sample_rate=0.2)
    frame = pd.DataFrame({"a": [1.0]})
    for i in range(2000):
        log.offer(str(i), _identity(), frame, [0])
    log.close()
    n = len((tmp_path / "p.jsonl").read_text().splitlines())
    assert 280 < n < 520  # 400 expected; binomial sd ~18


def test_prediction_log_never_blocks_and_counts_drops(tmp_path: Path) -> None:
    metrics = Metrics()
    log = PredictionLog(tmp_path / "p.jsonl", metrics, queue_size=5)
    frame = pd.DataFrame({"a": [1.0] * 1000})
    for i in range(500):  # a blocking offer would wait for the writer and never drop
        log.offer(str(i), _identity(), frame, [0] * 1000)
    log.close()
    written = len((tmp_path / "p.jsonl").read_text().splitlines())
    assert metrics.log_dropped > 0 and written + metrics.log_dropped == 500


def test_prediction_log_rotates(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "p.jsonl", Metrics(), max_bytes=2000)
    for i in range(40):
        log.offer(str(i), _identity(), pd.DataFrame({"a": [float(i)]}), [i])
    log.close()
    assert (tmp_path / "p.jsonl.1").exists()
    assert (tmp_path / "p.jsonl").stat().st_size <= 2000
    last = json.loads((tmp_path / "p.jsonl").read_text().splitlines()[-1])
    assert last["request_id"] == "39"


def test_the_watcher_retries_a_failed_fetch_but_not_a_bad_model(monkeypatch) -> None:
    from mlnb.errors import FetchFailed, IntegrityError
    from mlnb.serving import runtime, server, source

    alias = {"version": "2"}
    monkeypatch.setattr(source, "current_version", lambda ref: alias["version"])
    outcomes = [FetchFailed("store down"), None, IntegrityError("changed")]
    delivered = []

    def deliver(version: str) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        delivered.append(version)

    metrics = Metrics()
    watcher = runtime.Watcher(parse_uri("models:/m@champion"), server.Options(), "1", metrics, deliver)
    watcher.check()  # the store is down: nothing served changes, not counted as a bad version
    assert (watcher.serving, metrics.swap_failures["champion"], delivered) == ("1", 0, [])
    watcher.check()  # retried at the next poll
    assert (watcher.serving, delivered) == ("2", ["2"])
    alias["version"] = "3"
    watcher.check()  # a bad model: counted, and never tried again
    watcher.check()
    assert (watcher.serving, metrics.swap_failures["champion"], watcher.failed, outcomes) == ("2", 1, {"3"}, [])


def test_renders_of_several_workers_merge_into_one_valid_exposition() -> None:
    from mlnb.serving.metrics import merge

    renders = []
    for worker in ("0", "1"):
        m = Metrics(worker)
        m.request("/invocations", 200, "champion")
        m.scored(0.002, 3)
        renders.append(m.render())
    families = {f.name: f for f in text_string_to_metric_families(merge(renders))}  # one TYPE per family
    assert {s.labels["worker"] for s in families["mlnb_serve_requests"].samples} == {"0", "1"}
    counts = [s for s in families["mlnb_serve_request_duration_seconds"].samples if s.name.endswith("_count")
              and s.labels["variant"] == "champion"]
    assert sorted(s.labels["worker"] for s in counts) == ["0", "1"]
    assert merge(renders).count("# TYPE mlnb_serve_requests_total counter") == 1
