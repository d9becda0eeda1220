"""`mlnb monitor` on prediction logs a real `mlnb serve --prediction-log` wrote: traffic drawn from the
training data drifts nowhere; traffic with two columns moved flags exactly those (exit 1), with the report,
the JSON and an MLflow run of kind monitor; bad lines, a rotated log of another version and an empty window
are handled as documented."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import pytest

from tests.conftest import run_mlnb
from tests.serving_fixtures import breast_cancer, free_port, save_local_model, start_mlnb_serve, stop, wait_ready

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("monitor")
    (root / "pipeline.yaml").write_text("tasks: []\n")
    (root / "env.yaml").write_text("mlflow:\n  experiment: monitor-test\ndata:\n  target: diagnosis\n"
                                   "monitor:\n  min_rows: 200\n")
    X, y = breast_cancer()
    X.assign(diagnosis=y).to_parquet(root / "reference.parquet")
    save_local_model(root / "served")
    # the schema the data is validated with: worst_area's bound is the training data's largest value
    bounds = {c: {"dtype": "float", "min": 0, "max": float(X[c].max()) * (1 if c == "worst_area" else 3)}
              for c in X.columns}
    import yaml

    (root / "data").mkdir()
    (root / "data/schema.yaml").write_text(yaml.safe_dump({"target": "diagnosis", "columns": {
        **bounds, "diagnosis": {"dtype": "int"}, "patient_age": {"dtype": "float"}}}))
    return root


def _serve_traffic(root: Path, log: Path, frame) -> None:
    """Send ``frame`` to a real `mlnb serve` in 50-row requests; stop it (the log is flushed on the way out)."""
    port = free_port()
    proc = start_mlnb_serve(str(root / "served"), port, root, "--prediction-log", str(log), "--poll-interval", "0",
                            log=root / f"{log.stem}.serve.log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for start in range(0, len(frame), 50):
            part = frame.iloc[start:start + 50]
            body = json.dumps({"dataframe_split": {"columns": list(part.columns), "data": part.to_numpy().tolist()}})
            conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 200, resp.read()
            resp.read()
    finally:
        assert stop(proc) == 0


def test_traffic_like_the_training_data_does_not_drift(project: Path) -> None:
    X, _ = breast_cancer()
    _serve_traffic(project, project / "same.jsonl", X.sample(1500, replace=True, random_state=3))
    res = run_mlnb(project, "monitor", "--log", "same.jsonl", "--reference", "reference.parquet", "--json",
                   "--no-mlflow")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    data = json.loads(res.stdout)
    assert data["drift"] is False and data["drifted_features"] == []
    assert data["window"]["rows"] == 1500 and data["window"]["model_version"] == "local"
    assert len(data["features"]) == 30 and data["prediction"]["kind"] == "categorical"
    assert data["quality"]["columns"] == {} and data["quality"]["unknown_columns"] == []


def test_two_moved_columns_are_flagged_exactly(project: Path, tmp_path: Path) -> None:
    X, _ = breast_cancer()
    moved = X.sample(1500, replace=True, random_state=4).reset_index(drop=True)
    moved["mean_radius"] += 0.5 * X["mean_radius"].std()
    moved["worst_area"] = (moved["worst_area"] - X["worst_area"].mean()) * 2 + X["worst_area"].mean()
    log = project / "moved.jsonl"
    _serve_traffic(project, log, moved)
    # a rotated log of the version served before, a corrupted line and a truncated last line
    lines = log.read_text().splitlines()
    (project / "moved.jsonl.1").write_text("\n".join(line.replace('"model_version":"local"', '"model_version":"old"')
                                                     for line in lines[:5]) + "\n")
    with open(log, "a") as fh:
        fh.write("not json at all\n" + lines[0][:40])
    page = tmp_path / "report.html"
    res = run_mlnb(project, "monitor", "--log", "moved.jsonl", "--reference", "reference.parquet", "--html", str(page))
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr
    assert "DRIFT: 2 of 30 features drifted" in res.stdout
    assert "left out: 250 rows of version old" in res.stdout and "skipped: 2 unreadable log line(s)" in res.stdout
    assert "worst_area" in page.read_text() and "DRIFT" in page.read_text()
    data = json.loads(run_mlnb(project, "monitor", "--log", "moved.jsonl", "--reference", "reference.parquet",
                               "--json", "--no-mlflow").stdout)
    assert sorted(data["drifted_features"]) == ["mean_radius", "worst_area"]
    quality = data["quality"]  # the doubled spread crosses the schema's bound; a column the schema has is never sent
    assert set(quality["columns"]) == {"worst_area"} and quality["columns"]["worst_area"]["out_of_range"] > 0
    assert quality["missing_columns"] == ["patient_age"] and quality["ok"] is False
    assert 0.4 < data["features"]["mean_radius"]["wasserstein"] < 0.6
    run_id = res.stdout.strip().rsplit("MLflow run ", 1)[1]
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{project / 'mlflow.db'}"
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.data.tags["mlnb.kind"] == "monitor" and run.data.tags["mlnb.monitor.drift"] == "true"
    assert run.data.tags["mlnb.model_version"] == "local" and run.data.metrics["drift_share"] == pytest.approx(2 / 30, abs=1e-3)


def test_an_empty_window_and_a_missing_log_are_one_line(project: Path) -> None:
    if not (project / "same.jsonl").exists():
        X, _ = breast_cancer()
        _serve_traffic(project, project / "same.jsonl", X.sample(300, replace=True, random_state=5))
    for args, said in ((["--log", "same.jsonl", "--since", "2099-01-01"], "no champion predictions logged since"),
                       (["--log", "nowhere.jsonl"], "nowhere.jsonl: no prediction log here"),
                       (["--log", "same.jsonl", "--since", "yesterday"], "--since 'yesterday': expected"),
                       (["--log", "same.jsonl", "--last", "50"], "fewer than monitor.min_rows (200)"),
                       (["--log", "same.jsonl", "--version", "9"], "--version 9: not in the log")):
        res = run_mlnb(project, "monitor", *args, "--reference", "reference.parquet", "--no-mlflow")
        assert res.returncode == 2, (args, res.stdout, res.stderr)
        assert said in res.stderr and res.stderr.strip().count("\n") == 0, (args, res.stderr)


def test_live_drift_gauges_move_when_drifted_traffic_is_served(project: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    X, _ = breast_cancer()
    port = free_port()
    proc = start_mlnb_serve(str(project / "served"), port, project, "--drift-reference", "reference.parquet",
                            "--drift-window", "500", "--poll-interval", "0", log=project / "gauges.serve.log")

    def gauges() -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        return {(s.name, s.labels.get("feature")): s.value for f in text_string_to_metric_families(text)
                for s in f.samples if s.name.startswith(("mlnb_serve_drift", "mlnb_serve_prediction_drift"))}

    def send(frame) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for start in range(0, len(frame), 50):
            part = frame.iloc[start:start + 50]
            conn.request("POST", "/invocations", json.dumps({"dataframe_split": {
                "columns": list(part.columns), "data": part.to_numpy().tolist()}}), {"Content-Type": "application/json"})
            assert conn.getresponse().read()

    def until(ok, what: str) -> dict:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            seen = gauges()
            if ok(seen):
                return seen
            time.sleep(0.1)
        raise AssertionError(f"the gauges never showed {what}: {gauges()}")

    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        send(X.sample(500, replace=True, random_state=8))
        calm = until(lambda g: g.get(("mlnb_serve_drift_window_rows", None)) == 500, "500 rows")
        assert calm[("mlnb_serve_drifted_features", None)] == 0
        assert max(v for (n, _f), v in calm.items() if n == "mlnb_serve_drift_psi") < 0.2
        assert calm[("mlnb_serve_prediction_drift_psi", None)] < 0.1  # predicted classes as the labels' shares
        moved = X.sample(500, replace=True, random_state=9).reset_index(drop=True)
        moved["mean_radius"] += X["mean_radius"].std()
        send(moved)
        drifted = until(lambda g: g[("mlnb_serve_drift_psi", "mean_radius")] > 0.2, "mean_radius drifting")
        assert drifted[("mlnb_serve_drifted_features", None)] == 1  # the other 29 did not move
    finally:
        assert stop(proc) == 0
