"""A debug notebook and MLflow: running it records nothing in the project's experiment, its restore
cell prints no warning, `mlnb debug` finds no server when none runs, and once a later build runs the
task the old failure is no longer offered for debugging. Also the build run's readable name. Real
kernels, real MLflow store, real git."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from mlnb.core.project import load_project
from tests.conftest import MLNB, REPO, run_mlnb
from tests.integration.test_fast_builds import make_project

pytestmark = pytest.mark.integration

CELLS = [
    "from mlnb import task\nfrom tqdm.auto import tqdm  # unpickled on restore: tqdm.auto warns in a kernel\n"
    "ctx = task.context('t', upstream, product)\nsteps = [1, 2, 3]",
    "import mlflow\nwith ctx.mlflow_run('fast') as run:\n    mlflow.log_param('steps', len(steps))\n"
    "    raise ValueError('boom')",
    "from pathlib import Path\nPath(product['out']).write_text('ok')",
]


def client(db: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(f"sqlite:///{db}")


def runs(db: Path) -> list[tuple[str, str, str, dict[str, str]]]:
    """(run id, name, status, tags) of every run in the store ``db``."""
    store = client(db)
    found = store.search_runs([e.experiment_id for e in store.search_experiments()])
    return sorted((r.info.run_id, r.info.run_name, r.info.status, r.data.tags) for r in found)


def test_a_debug_notebook_records_nothing_and_a_later_build_retires_the_failure(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from mlnb.errors import StaleFailure
    from mlnb.services import debug

    root = make_project(tmp_path, {"t": (CELLS, [])})
    (root / "env.yaml").write_text("mlflow:\n  experiment: fast\nt:\n  alpha: 1.0\n")
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", "alpha"],
                   cwd=root, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout[:7]
    env = {"MLNB_SNAPSHOT_AFTER_S": "0", "JUPYTER_RUNTIME_DIR": str(tmp_path / "no-servers")}
    built = run_mlnb(root, "build", "--no-dvc", "-p", "t.alpha=0.5", env=env)
    assert built.returncode == 1 and "FAILED task t: cell 2" in built.stderr, built.stdout + built.stderr
    db = root / "mlflow.db"
    (failed_id, name, _, tags), = [r for r in runs(db) if r[3].get("mlnb.kind") == "build"]
    assert name == f"{sha} alpha=0.5"  # the commit and the param that differs from it
    assert tags["mlnb.debuggable"] == "true"
    assert {r[1] for r in runs(db) if r[3].get("mlnb.kind") == "task"} == {"t"}
    kind = client(db).get_experiment_by_name("fast").tags["mlflow.experimentKind"]
    assert kind == "custom_model_development"  # MLflow's UI opens the experiment on its runs

    out = run_mlnb(root, "debug", "t", env=env)
    assert out.returncode == 0, out.stderr
    assert "no JupyterLab is running on this project" in out.stdout and "localhost:8888" not in out.stdout
    lab = subprocess.Popen([*MLNB, "debug", "t", "--lab"], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True, start_new_session=True,
                           env={**os.environ, **env, "PYTHONPATH": str(REPO), "BROWSER": "true"})  # opens no browser
    try:
        started = next((line for line in lab.stdout if "JupyterLab started:" in line), "(exited before)")
        (info,) = (tmp_path / "no-servers").glob("jpserver-*.json")
        port = json.loads(info.read_text())["port"]
        assert f":{port}/lab/tree/products/_failed/t/t.debug.ipynb?token=" in started, started  # its real URL
    finally:
        os.killpg(lab.pid, signal.SIGINT)  # Ctrl-C: Jupyter shuts down, mlnb debug returns
        lab.wait(timeout=60)
    before = runs(db)
    nb = nbformat.read(root / "products/_failed/t/t.debug.ipynb", as_version=4)
    assert nb.metadata["language_info"].get("version")  # as the kernel describes itself: opens unmodified
    with pytest.raises(CellExecutionError, match="boom"):
        NotebookClient(nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(root)}}).execute()
    restore = nb.cells[1]
    assert "restored:" in "".join(o.get("text", "") for o in restore.outputs)
    assert [o for o in restore.outputs if o.get("name") == "stderr"] == []  # no TqdmWarning
    assert runs(db) == before  # no stray FAILED t run in the experiment
    assert [(r[1], r[2]) for r in runs(root / ".mlnb/debug/mlflow.db")] == [("t (debug)", "FAILED")]

    source = json.loads((root / "notebooks/t.ipynb").read_text())
    source["cells"][2]["source"] = "steps = steps + [4]"
    (root / "notebooks/t.ipynb").write_text(json.dumps(source))
    assert run_mlnb(root, "build", "--no-dvc", env=env).returncode == 0
    assert dict((r[0], r[3]) for r in runs(db))[failed_id]["mlnb.debuggable"] == "false"  # no Debug button
    with pytest.raises(StaleFailure, match="no longer current"):  # POST debug answers 409
        debug.debug_notebook_for(load_project(root), "t", root, failed_id)
