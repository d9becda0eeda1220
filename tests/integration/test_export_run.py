"""The exported Argo workflow runs: each of its steps, executed as Argo would (the step's container command and
arguments, its environment, upstream manifests substituted from the upstream steps' output files), in its own
fresh copy of the project's sources (a pod of the project image: no products, no DVC-tracked data), with only
the DVC remote and MLflow's store shared. The last step ends with the serving model, built from data the steps
fetched by hash."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, copy_project, run_mlnb

pytestmark = pytest.mark.integration

MLNB = Path(sys.executable).with_name("mlnb")


def _order(dag: list[dict]) -> list[dict]:
    done: list[str] = []
    ordered = []
    pending = list(dag)
    while pending:
        ready = next(t for t in pending if set(t.get("dependencies", [])) <= set(done))
        pending.remove(ready)
        ordered.append(ready)
        done.append(ready["name"])
    return ordered


def test_the_exported_argo_workflow_runs_step_by_step_through_the_remote(tmp_path: Path) -> None:
    project = copy_project(tmp_path / "source")
    remote = tmp_path / "remote"
    remote.mkdir()
    assert run_mlnb(project, "remote", "set", str(remote)).returncode == 0
    dvc = Path(sys.executable).with_name("dvc")
    subprocess.run([str(dvc), "commit", "-f", "-q", "data/raw.dvc"], cwd=project, check=True)  # into the cache
    pushed = run_mlnb(project, "push")  # the raw data, as the project's CI pushes it
    assert pushed.returncode == 0, pushed.stderr
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exported = run_mlnb(project, "export", "argo", "--image", "registry.example/mlnb-example:1.0", "--out",
                        str(tmp_path / "deploy"), "--dvc-remote", str(remote), "--tracking-uri", store,
                        "-p", "train.C=0.5")
    assert exported.returncode == 0, exported.stderr
    workflow = yaml.safe_load((tmp_path / "deploy/workflow.yaml").read_text())
    params = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    templates = {t["name"]: t for t in workflow["spec"]["templates"]}
    dag = templates[workflow["spec"]["entrypoint"]]["dag"]["tasks"]

    outputs: dict[str, str] = {}  # step -> the products manifest it wrote (Argo's output parameter)
    pods: dict[str, Path] = {}
    for step in _order(dag):
        template = templates[step["template"]]
        pod = tmp_path / "pods" / step["name"]
        copy_project(pod)  # the image's project: sources only
        shutil.rmtree(pod / "data/raw")  # DVC-tracked: not in the image, fetched by hash
        given = {a["name"]: a["value"] for a in step.get("arguments", {}).get("parameters", [])}
        given = {k: re.sub(r"\{\{tasks\.([\w-]+)\.outputs\.parameters\.products\}\}", lambda m: outputs[m[1]], v)
                 for k, v in given.items()}
        out_path = template["outputs"]["parameters"][0]["valueFrom"]["path"]
        mine = str(pod / "out" / Path(out_path).name)  # the pod's own /tmp

        def fill(arg: str, given: dict[str, str] = given, mine: str = mine, out_path: str = out_path) -> str:
            arg = re.sub(r"\{\{workflow\.parameters\.([\w-]+)\}\}", lambda m: params[m[1]], arg)
            arg = re.sub(r"\{\{inputs\.parameters\.([\w-]+)\}\}", lambda m: given[m[1]], arg)
            return mine if arg == out_path else arg

        container = template["container"]
        env = {**os.environ, "PYTHONPATH": str(REPO), **{e["name"]: e["value"] for e in container["env"]}}
        cmd = [str(MLNB) if c == "mlnb" else c for c in container["command"]] + [fill(a) for a in container["args"]]
        proc = subprocess.run(cmd, cwd=pod, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"step {step['name']}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        outputs[step["name"]] = Path(mine).read_text()
        assert json.loads(outputs[step["name"]])["task"] == step["name"]
        pods[step["name"]] = pod

    last = pods["export"]
    assert (last / "products/export/model/MLmodel").is_file()
    assert not (last / "products/train").exists() or not (last / "products/ingest").exists()  # only what it needs
    metrics = json.loads((pods["evaluate"] / "products/evaluate/metrics.json").read_text())
    assert metrics["f1"] > 0.9
    train = (pods["train"] / "products/train/train.ipynb").read_text()
    assert '"C": 0.5' in train or "C = 0.5" in train  # the workflow parameter reached the task
