"""``mlnb export argo`` and ``mlnb export kubeflow`` as a user runs them: the installed ``mlnb`` command in a
copy of the example project; both files valid for Argo's and KFP's own schemas (tests/export_checks.py) and
listing every task of the example's pipeline.yaml and every upstream edge."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlnb.core.project import load_project
from tests import export_checks as check
from tests.conftest import REPO, copy_project

pytestmark = pytest.mark.integration

MLNB = Path(sys.executable).with_name("mlnb")  # the console script `pip install` made
IMAGE = "ghcr.io/acme/mlnb-example:1.0"


def _mlnb(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([str(MLNB), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("export") / "example")


def test_export_argo_and_kubeflow_from_the_example_project(example: Path) -> None:
    upstream = {name: task.upstream for name, task in load_project(example).spec.tasks.items()}
    assert len(upstream) >= 5 and sum(map(len, upstream.values())) >= 5  # the example: a real DAG
    common = ["--image", IMAGE, "--out", "deploy", "-p", "train.C=0.5", "--tracking-uri", "http://mlflow:5000",
              "--dvc-remote", "s3://acme-dvc/example"]

    argo = _mlnb(example / "notebooks", "export", "argo", *common[:2], "--out", "../deploy", *common[4:],
                 "--namespace", "ml")  # from a subfolder: --out is relative to where the command runs
    assert argo.returncode == 0, argo.stdout + argo.stderr
    assert argo.stdout.splitlines() == [f"wrote {example / 'deploy/workflow.yaml'} ({len(upstream)} steps, "
                                        f"{sum(map(len, upstream.values()))} dependencies, 1 parameter)"]
    assert argo.stderr == ""  # pinned image, tracking URI and remote given: nothing to warn about
    doc = check.argo(check.read(example / "deploy/workflow.yaml"))
    check.assert_same_dag(check.argo_steps(doc), upstream, IMAGE)
    assert doc["spec"]["arguments"]["parameters"][0]["value"] == "0.5"

    kfp = _mlnb(example, "export", "kubeflow", *common)
    assert kfp.returncode == 0, kfp.stdout + kfp.stderr
    assert kfp.stdout.splitlines() == [f"wrote {example / 'deploy/kubeflow-pipeline.yaml'} ({len(upstream)} steps, "
                                       f"{sum(map(len, upstream.values()))} dependencies, 1 parameter)"]
    spec, platform = check.kubeflow(check.read(example / "deploy/kubeflow-pipeline.yaml"))
    check.assert_same_dag(check.kubeflow_steps(spec), upstream, IMAGE)
    assert platform is not None
    assert sorted(p.name for p in (example / "deploy").iterdir()) == ["kubeflow-pipeline.yaml", "workflow.yaml"]


def test_export_refuses_bad_input_in_one_line(example: Path) -> None:
    said = _mlnb(example, "export", "argo", "--image", "Not An Image", "--out", "deploy-bad")
    assert said.returncode == 2, said.stdout + said.stderr
    assert said.stderr.startswith("mlnb: error: --image 'Not An Image'") and len(said.stderr.splitlines()) == 1
    assert not (example / "deploy-bad").exists()
