"""The whole build against a real ``mlflow server`` process on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import copy_project, run_mlnb

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path: Path):
    port = free_port()
    store = tmp_path / "server"
    store.mkdir()
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}", "--artifacts-destination",
           str(store / "artifacts"), "--workers", "1"]
    log = open(store / "server.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError((store / "server.log").read_text()[-2000:])
    else:
        proc.kill()
        raise RuntimeError("mlflow server did not become healthy in 120 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_build_against_a_real_tracking_server(tmp_path: Path, mlflow_server: str) -> None:
    from mlflow.tracking import MlflowClient

    project = copy_project(tmp_path / "p")
    proc = run_mlnb(project, "build", env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (project / "mlflow.db").exists(), "MLFLOW_TRACKING_URI must win over the embedded store"
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    exp = client.get_experiment_by_name("mlnb-example")
    (build,) = client.search_runs([exp.experiment_id], "tags.`mlnb.kind` = 'build'")
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{build.info.run_id}'")
    assert len(children) == 6
    # the UI opens it among the training runs (MLflow 3.17's UI would show its GenAI overview otherwise)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert (f"in the MLflow UI: {mlflow_server}/#/experiments/{exp.experiment_id}/runs/{build.info.run_id}"
            "?workflowType=machine_learning") in proc.stdout
    export = next(c for c in children if c.data.tags["mlnb.task"] == "export")
    assert [a.path for a in client.list_artifacts(export.info.run_id, "notebooks")] == ["notebooks/export.ipynb"]
    (version,) = client.search_model_versions("name = 'breast-cancer-classifier'")
    assert version.aliases == []
    runs = run_mlnb(project, "runs", env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert build.info.run_id in runs.stdout
