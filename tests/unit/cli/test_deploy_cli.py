"""``mlnb deploy k8s`` as a user runs it: the real CLI in a subprocess, from inside a project (the model URI
defaults to the project's ``models:/<model_name>@champion``), every strategy's file valid
(tests/k8s_checks.py); bad input refused with exit 2, one line on stderr and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import k8s_checks as check
from tests.conftest import run_mlnb

IMAGE = "ghcr.io/acme/breast-cancer-serving:2.0.1"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deploy") / "proj"
    (root / "notebooks").mkdir(parents=True)
    (root / "pipeline.yaml").write_text("tasks: []\n")
    (root / "env.yaml").write_text("mlflow:\n  experiment: demo\n  model_name: breast-cancer-classifier\n")
    return root


@pytest.mark.parametrize("strategy", ["rolling", "canary", "blue-green"])
def test_each_strategy_from_a_project_subfolder(project: Path, strategy: str) -> None:
    out = project / f"deploy-{strategy}"
    ran = run_mlnb(project / "notebooks", "deploy", "k8s", "--strategy", strategy, "--image", IMAGE, "--out",
                   f"../deploy-{strategy}", "--tracking-uri", "http://mlflow.mlops.svc:5000", timeout=60)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stderr == ""  # a pinned image and a tracking URI: nothing to warn about
    path = out / "serving.yaml"
    docs = check.read(path)
    check.validate_all(docs)
    assert sorted(p.name for p in out.iterdir()) == ["serving.yaml"]
    config = next(d for d in docs if d["kind"] == "ConfigMap")
    assert config["data"]["MLNB_MODEL_URI"] == "models:/breast-cancer-classifier@champion"
    lines = ran.stdout.splitlines()
    objects = ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    assert lines[0] == f"wrote {path} ({strategy}): {objects}"
    assert lines[1] == f"next: kubectl apply -f {path}"
    if strategy == "rolling":
        assert lines[2:] == ["next: kubectl rollout status deployment/breast-cancer-classifier"]
    else:
        assert lines[2] == "next: kubectl argo rollouts get rollout breast-cancer-classifier --watch"
        assert len(lines) == (4 if strategy == "blue-green" else 3)


@pytest.mark.parametrize(("args", "start"), [
    (["--strategy", "linear"], "--strategy 'linear': expected one of rolling, canary, blue-green"),
    (["--strategy", "canary", "--canary-steps", "10,5"], "--canary-steps '10,5': weights must rise"),
    (["--strategy", "canary", "--canary-steps", "120"], "--canary-steps '120': 120 is not a weight"),
    (["--image", "ghcr.io/acme/serving"], "--image 'ghcr.io/acme/serving': pin a tag or a digest"),
    (["--image", "ghcr.io/acme/serving:latest"], "--image 'ghcr.io/acme/serving:latest': pin a tag"),
    (["--replicas", "0"], "--replicas 0: expected 1 to 1000"),
    (["--tracking-uri", "https://bob:s3cret@mlflow.example.com"], "--tracking-uri https://bob:***@mlflow"),
    (["--cpu", "2", "--cpu-limit", "1"], "--cpu-limit '1': below the request --cpu 2"),
], ids=["strategy", "steps-fall", "steps-120", "untagged", "latest", "replicas", "credentials", "cpu-limit"])
def test_bad_input_is_exit_2_one_line_nothing_written(project: Path, args: list[str], start: str) -> None:
    full = ["deploy", "k8s", "--image", IMAGE, "--out", "bad", *args]
    ran = run_mlnb(project, *full, timeout=60)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert ran.stderr.startswith(f"mlnb: error: {start}"), ran.stderr
    assert len(ran.stderr.splitlines()) == 1 and ran.stdout == "" and "s3cret" not in ran.stderr
    assert not (project / "bad").exists()


def test_outside_a_project_the_model_uri_must_be_given(tmp_path: Path) -> None:
    ran = run_mlnb(tmp_path, "deploy", "k8s", "--image", IMAGE, "--out", "k8s", timeout=60)
    assert ran.returncode == 2 and ran.stderr.startswith("mlnb: error: --model-uri: not given"), ran.stderr
    ran = run_mlnb(tmp_path, "deploy", "k8s", "--image", IMAGE, "--out", "k8s", "--model-uri", "/home/mlnb/serving",
                   "--tracking-secret", "", timeout=60)
    assert ran.returncode == 0, ran.stderr
    check.validate_all(check.read(tmp_path / "k8s" / "serving.yaml"))
