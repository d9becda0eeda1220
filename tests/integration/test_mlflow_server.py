"""The whole build against a real ``mlflow server`` process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_project, run_mlnb

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

    # The Runs panel's view of a tracking server: a link into its UI, the real evaluate notebook's
    # plots (found on its task run, downloaded through the server), a change token that queries it.
    listed = run_mlnb(project, "runs", "--json", env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)["runs"]
    assert row["mlflow_url"] == f"{mlflow_server}/#/experiments/{exp.experiment_id}/runs/{build.info.run_id}"
    assert row["verdict"] == "promotable" and {"f1", "roc_auc", "accuracy"} <= set(row["metrics"])
    view = subprocess.run([sys.executable, "-c", RUN_VIEW, build.info.run_id, str(tmp_path / "dl")], cwd=project,
                          env={**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": mlflow_server},
                          capture_output=True, text=True, timeout=300)
    assert view.returncode == 0, view.stderr[-3000:]
    seen = json.loads(view.stdout.strip().splitlines()[-1])
    assert seen["plots"] == [["evaluate", "confusion_matrix.png"], ["evaluate", "roc.png"]]
    assert seen["png"] and seen["tokens_equal"]


RUN_VIEW = """
import json, sys
from pathlib import Path
from mlnb.core.project import load_project
from mlnb.services import registry, runs
project = registry.open_registry(load_project(Path(".")))
detail = runs.run_detail(project, sys.argv[1])["run"]
roc = next(p for p in detail["plots"] if p["name"] == "roc.png")
Path(sys.argv[2]).mkdir()
local, kind = runs.artifact(project, roc["run_id"], roc["path"], Path(sys.argv[2]))
print(json.dumps({"plots": [[p["task"], p["name"]] for p in detail["plots"]],
                  "png": kind == "image/png" and local.read_bytes().startswith(b"\\x89PNG"),
                  "tokens_equal": runs.changes(project) == runs.changes(project)}))
"""
