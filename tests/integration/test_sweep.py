"""``mlnb sweep`` on the example, as a user runs it: a 2x2 grid over the training task's parameters, the tasks
upstream of them (ingest, validate, features) run once for the whole sweep, each point an ordinary build run
under one sweep run, the table sorted by the gate metric, and any point promotable with ``mlnb promote``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import copy_project, run_mlnb

pytestmark = pytest.mark.integration


def test_a_grid_shares_its_upstream_tasks_and_any_point_can_be_promoted(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    project = copy_project(tmp_path / "p")
    proc = run_mlnb(project, "sweep", "-p", "train.C=0.5,2", "-p", "train.model=logistic_regression,random_forest",
                    "-j", "2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "shared tasks (run once): ingest, validate, features" in proc.stdout
    lines = [ln for ln in proc.stdout.splitlines() if re.match(r"^\*?\s+(0\.5|2)\s", ln)]
    rows = [ln.split() for ln in lines]
    assert len(rows) == 4
    f1 = [float(r[-4]) for r in rows]
    assert f1 == sorted(f1, reverse=True), "sorted by the gate metric, best first"
    assert lines[0].startswith("*") and not any(ln.startswith("*") for ln in lines[1:]), "the best is marked"

    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mlnb-example")
    (sweep,) = client.search_runs([exp.experiment_id], "tags.`mlnb.kind` = 'sweep'")
    builds = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{sweep.info.run_id}'")
    assert len(builds) == 4 and all(b.data.tags["mlnb.kind"] == "build" for b in builds)
    ran: dict[str, int] = {}
    for build in builds:
        tasks = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{build.info.run_id}' and "
                                   "tags.`mlnb.kind` = 'task'")
        for task in tasks:
            if "mlnb.status" in task.data.tags:  # the task runs mlnb records (a notebook's own runs aside)
                ran[task.data.tags["mlnb.task"]] = ran.get(task.data.tags["mlnb.task"], 0) + 1
    assert ran == {"ingest": 1, "validate": 1, "features": 1, "train": 4, "evaluate": 4, "export": 4}
    assert sweep.data.tags["mlnb.sweep.best_run"] == rows[0][-2]
    # the points' commit is the project's, and their run names say the point
    assert {b.data.tags["mlnb.git_commit"] for b in builds} == {
        client.get_run(rows[0][-2]).data.tags["mlnb.git_commit"]}
    assert not client.get_run(rows[0][-2]).data.tags["mlnb.git_commit"].endswith("-dirty")

    # any point, not only the best, is promoted as a build is (the registry's champion is its model)
    other = rows[-1][-2]
    judged = run_mlnb(project, "promote", other)  # judged as any build: only the example's nbval policy fails
    assert judged.returncode == 1 and "[ok  ] gate: held" in judged.stdout and "[ok  ] clean_tree" in judged.stdout
    assert "not promoted: nbval:" in judged.stderr
    promoted = run_mlnb(project, "promote", other, "--force", "--note", "a sweep point (nbval not run here)")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    version = client.get_model_version_by_alias("breast-cancer-classifier", "champion")
    assert version.tags.get("mlnb.build_run_id") == other
