"""The scheduled monitoring job on a new project, for real: `mlnb init`, then scripts/monitor-ci.sh (the one
the project's CI runs) with the real mlnb and dvc, a prediction log whose `feature_a` moved, and newer data.
Only GitHub's `gh` is a stand-in; `origin` is a local bare repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_mlnb

pytestmark = pytest.mark.integration


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def prediction_log(path: Path, frame, model: str) -> None:
    """What `mlnb serve --prediction-log` writes (mlnb.serving.predlog), 20 rows a request, the last hour."""
    now = time.time() - 3600
    with path.open("w") as fh:
        for i in range(0, len(frame), 20):
            part = frame.iloc[i:i + 20]
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now + i)) + ".000Z"
            fh.write(json.dumps({"time": stamp, "request_id": f"r{i}", "model_name": model, "model_version": "1",
                                 "variant": "champion", "rows": len(part), "logged_rows": len(part),
                                 "columns": list(part.columns), "inputs": part.to_numpy().tolist(),
                                 "predictions": [int(v) for v in (part["feature_a"] > 0)]}) + "\n")


def test_drift_in_a_new_project_becomes_a_pull_request_with_the_gate_verdict(tmp_path: Path) -> None:
    import pandas as pd

    bindir = Path(sys.executable).parent
    assert (bindir / "mlnb").is_file() and (bindir / "dvc").is_file(), "run from the project's venv (make test)"
    assert run_mlnb(tmp_path, "init", "shop").returncode == 0
    root = tmp_path / "shop"
    git(root, "init", "-q")
    git(root, "symbolic-ref", "HEAD", "refs/heads/main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=dev", "-c", "user.email=dev@example.com", "commit", "-qm", "init")
    git(tmp_path, "init", "-q", "--bare", "origin.git")
    git(root, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(root, "push", "-q", "origin", "main")

    sample = pd.read_csv(root / "data/raw/sample.csv")
    served = sample.drop(columns="label").assign(feature_a=lambda f: f["feature_a"] + 3.0)
    prediction_log(tmp_path / "predictions.jsonl", served, "shop-model")
    (tmp_path / "latest").mkdir()
    sample.assign(feature_a=sample["feature_a"] + 3.0).to_csv(tmp_path / "latest/sample.csv", index=False)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gh").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/gh.args\n')
    (fake / "gh").chmod(0o755)

    env = {**os.environ, "PATH": f"{fake}:{bindir}:{os.environ['PATH']}", "HOME": str(tmp_path),
           "GIT_CONFIG_NOSYSTEM": "1", "GITHUB_ACTIONS": "true", "GITHUB_REF_NAME": "main",
           "GITHUB_RUN_ID": "7", "GITHUB_REPOSITORY": "acme/shop",
           "MLNB_PREDICTION_LOG_URL": str(tmp_path / "predictions.jsonl"),
           "MLNB_RAW_DATA_URL": str(tmp_path / "latest")}
    ran = subprocess.run(["bash", "scripts/monitor-ci.sh"], cwd=root, env=env, capture_output=True, text=True,
                         timeout=900)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out[-4000:]
    monitor = json.loads((root / "reports/monitor.json").read_text())
    assert monitor["drift"] is True and "feature_a" in monitor["drifted_features"]
    assert monitor["reference"]["path"] == "products/train/train.parquet"  # params.yaml monitor.reference
    assert (root / "reports/monitor.html").is_file() and (root / "reports/report.html").is_file()

    branches = git(tmp_path / "origin.git", "for-each-ref", "--format=%(refname:short)", "refs/heads/").split()
    [branch] = [b for b in branches if b != "main"]
    assert git(tmp_path / "origin.git", "diff", "--name-only", "main", branch) == "data/raw/sample.csv"
    args = (tmp_path / "gh.args").read_text().splitlines()
    assert args[:2] == ["pr", "create"] and args[args.index("--head") + 1] == branch
    verdict = run_mlnb(root, "verdict").stdout.strip()
    assert args[args.index("--title") + 1].endswith(f"gate verdict {verdict}")
    assert verdict in ("promotable", "not_promotable", "failed")
