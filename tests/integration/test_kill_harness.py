"""``kill -9`` at random moments of `mlnb build --force` and `mlnb run TASK`: afterwards no task whose
notebook is partial is called up to date, the next `mlnb build` completes it, DVC records only whole
outputs, no process of the killed build is left, and its MLflow run is closed as KILLED. Bounded: a fixed seed, six kills."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import MLNB, REPO, git_init, run_mlnb, write_notebook
from tests.integration.test_dvc import dvc, lock_md5, ok
from tests.integration.test_fast_builds import leftovers, tagged_env

pytestmark = pytest.mark.integration

TASKS = {"a": None, "b": "a", "c": "b"}
SLOW_CELL = "import time\ntime.sleep(0.8)\nstep = {i}"  # papermill saves a running notebook


def make_project(base: Path) -> Path:
    root = base / "killed"
    lines = ["tasks:"]
    for task, up in TASKS.items():
        cells = [("params", f"upstream = {[up] if up else None!r}\nproduct = None"),
                 *(("code", SLOW_CELL.format(i=i)) for i in range(4)),
                 ("code", f"from pathlib import Path\nPath(product['out']).write_text('{task} done')")]
        write_notebook(root / f"notebooks/{task}.ipynb", cells)
        lines += [f"  - source: notebooks/{task}.ipynb",
                  f"    product: {{nb: products/{task}/{task}.ipynb, out: products/{task}/out.txt}}"]
    (root / "pipeline.yaml").write_text("\n".join(lines) + "\n")
    (root / "env.yaml").write_text("mlflow:\n  experiment: killed\n")
    (root / ".gitignore").write_text("/products/\n/mlflow.db\n/mlartifacts/\n")
    git_init(root)
    ok(run_mlnb(root, "dvc", "init"))
    ok(run_mlnb(root, "build"))
    return root


def whole(root: Path, task: str) -> bool:
    """The task's executed notebook ran every cell, and its last product was written."""
    nb_path = root / f"products/{task}/{task}.ipynb"
    if not nb_path.exists():
        return False
    cells = json.loads(nb_path.read_text())["cells"]
    states = [c.get("metadata", {}).get("papermill", {}).get("status") for c in cells if c["cell_type"] == "code"]
    out = root / f"products/{task}/out.txt"
    return all(s == "completed" for s in states) and out.exists() and out.read_text() == f"{task} done"


def up_to_date(root: Path) -> set[str]:
    result = run_mlnb(root, "status")
    assert result.returncode == 0, result.stderr
    return {ln.split()[0] for ln in result.stdout.splitlines()[2:] if ln.split()[1:2] == ["up"]}


def build_statuses(root: Path) -> list[str]:
    code = ("import json, mlflow\nmlflow.set_tracking_uri('sqlite:///mlflow.db')\nc = mlflow.MlflowClient()\n"
            "e = c.get_experiment_by_name('killed')\n"
            "print(json.dumps([r.info.status for r in c.search_runs([e.experiment_id], \"tags.`mlnb.kind` = 'build'\")]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_kill_9_never_leaves_a_partial_output_that_counts(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    rng = random.Random(20261204)
    tag = tmp_path / "tree"
    env = {**__import__("os").environ, "PYTHONPATH": str(REPO), **tagged_env(tag)}
    for round_ in range(6):
        args = ["build", "--force", "--no-dvc"] if round_ % 2 == 0 else ["run", "b"]
        proc = subprocess.Popen([*MLNB, *args], cwd=root, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(3.0, 12.0))
        proc.send_signal(signal.SIGKILL)  # kill -9 of the command, as a crash or an OOM killer would
        proc.wait()
        deadline = time.monotonic() + 30
        while leftovers(tag) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert leftovers(tag) == [], f"round {round_} ({' '.join(args)}): processes outlived the build"
        fresh = up_to_date(root)
        partial = [t for t in fresh if not whole(root, t)]
        assert partial == [], f"round {round_}: partial outputs called up to date: {partial}"
    ok(run_mlnb(root, "build"))
    statuses = build_statuses(root)  # the killed builds' runs were closed by the next build
    assert "RUNNING" not in statuses and statuses.count("KILLED") >= 1, statuses
    assert all(whole(root, t) for t in TASKS)
    assert up_to_date(root) == set(TASKS)
    status = dvc(root, "status")
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr
    for task in TASKS:  # what DVC recorded is what is on disk, whole
        import hashlib

        nb = f"products/{task}/{task}.ipynb"
        assert lock_md5(root, nb) == hashlib.md5((root / nb).read_bytes()).hexdigest()
