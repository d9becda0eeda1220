"""The incremental CI path on the example project, with real git, real DVC and a local-directory remote:
build -> commit -> push -> fresh clone -> pull -> build runs 0 tasks -> change one param -> build
re-runs exactly the dependent tasks -> `dvc params diff` / `dvc metrics diff` show the change."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_project, run_mlnb
from tests.integration.test_dvc import ENV, dvc, git, ok

pytestmark = pytest.mark.integration


def statuses(stdout: str) -> dict[str, str]:
    rows = re.findall(r"^(\w+)\s+(executed|skipped|failed|not run)\b", stdout, flags=re.M)
    return dict(rows)


def test_incremental_ci_path(tmp_path: Path):
    timings: dict[str, float] = {}

    def timed(label: str, res_fn):
        start = time.perf_counter()
        res = res_fn()
        timings[label] = round(time.perf_counter() - start, 1)
        return res

    project, remote, clone = copy_project(tmp_path / "project"), tmp_path / "remote", tmp_path / "clone"
    ok(run_mlnb(project, "remote", "set", str(remote)))
    res = ok(timed("first build", lambda: run_mlnb(project, "build")))
    assert set(statuses(res.stdout).values()) == {"executed"}, res.stdout
    assert "data/raw.dvc" in res.stdout  # raw data recorded in the cache too (regenerated, never pushed yet)
    git(project, "add", "dvc.lock", "data/raw.dvc")
    git(project, "commit", "-qm", "build")
    ok(timed("push", lambda: run_mlnb(project, "push")))

    git(tmp_path, "clone", "-q", str(project), str(clone))
    assert not (clone / "products").exists() and not (clone / "data/raw/breast_cancer.csv").exists()
    env = {"MLNB_DVC_REMOTE": str(remote)}
    ok(timed("fresh clone: pull", lambda: run_mlnb(clone, "pull", env=env)))
    assert (clone / "data/raw/breast_cancer.csv").read_bytes() == (project / "data/raw/breast_cancer.csv").read_bytes()
    res = ok(timed("fresh clone: no-op build", lambda: run_mlnb(clone, "build")))
    assert "Nothing to do: all 6 tasks are up to date" in res.stdout, res.stdout
    assert "Data and pipelines are up to date" in ok(dvc(clone, "status")).stdout
    res = ok(subprocess.run([str(Path(sys.executable).parent / "ploomber"), "build"], cwd=clone, env=ENV,
                            capture_output=True, text=True, timeout=600))
    assert re.search(r"^ingest\s+False", res.stdout, re.M) and not re.search(r"\sTrue\s", res.stdout), res.stdout

    params = clone / "params.yaml"
    params.write_text(params.read_text().replace("  C: 1.0", "  C: 0.01", 1))
    lock_before = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    res = ok(timed("one param changed: build", lambda: run_mlnb(clone, "build")))
    ran = {k for k, v in statuses(res.stdout).items() if v == "executed"}
    assert ran == {"train", "evaluate", "export"}, res.stdout
    lock_after = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    assert {s for s in lock_after if lock_after[s] != lock_before[s]} == {"train", "evaluate", "export"}
    assert "Data and pipelines are up to date" in ok(dvc(clone, "status")).stdout

    pdiff = ok(dvc(clone, "params", "diff")).stdout
    assert re.search(r"params\.yaml\s+train\.C\s+1\.0\s+0\.01", pdiff), pdiff
    mdiff = ok(dvc(clone, "metrics", "diff", "--json")).stdout
    changes = json.loads(mdiff)["products/evaluate/metrics.json"]
    assert any(v.get("diff") for v in changes.values()), mdiff
    print("incremental CI timings (s):", json.dumps(timings))
