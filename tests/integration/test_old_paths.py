"""Pipelines and notebooks written before mlnb was layered keep building with the installed CLI.

* ``tests/fixtures/converted_before_layers/``: ``mlnb convert`` of ``examples/exploratory/01_iris_species_eda.ipynb``
  written (and committed) by the code before the layering, built as it is;
* a task notebook importing the old flat paths (``from mlnb import task``, ``mlnb.io``, ``mlnb.gate``,
  ``mlnb.data``, ``mlnb.evaluation``, ``mlnb.modeling``) runs, and each old name is the new module itself
  (one module object: state set through one path is seen through the other)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, run_mlnb, write_notebook

pytestmark = pytest.mark.integration
FIXTURE = REPO / "tests/fixtures/converted_before_layers"
OLD_IMPORTS = """\
from mlnb import task
import mlnb.io, mlnb.gate, mlnb.data, mlnb.evaluation, mlnb.modeling
import mlnb.tasklib.task, mlnb.core.io, mlnb.core.gate, mlnb.tasklib.data, mlnb.tasklib.evaluation
import mlnb.tasklib.modeling
from mlnb.io import read_json
from mlnb.gate import GateConfig
same = [task is mlnb.tasklib.task, mlnb.io is mlnb.core.io, mlnb.gate is mlnb.core.gate,
        mlnb.data is mlnb.tasklib.data, mlnb.evaluation is mlnb.tasklib.evaluation,
        mlnb.modeling is mlnb.tasklib.modeling, GateConfig is mlnb.core.gate.GateConfig]
open(product["data"], "w").write(__import__("json").dumps(same + [read_json is mlnb.core.io.read_json]))
"""


def _git_init(root: Path) -> None:
    for cmd in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"]):
        subprocess.run(["git", *cmd], cwd=root, check=True, capture_output=True)


def test_a_pipeline_converted_before_the_layering_builds(tmp_path: Path) -> None:
    root = tmp_path / "old"
    shutil.copytree(FIXTURE, root)
    _git_init(root)
    built = run_mlnb(root, "build", "--no-dvc")
    assert built.returncode == 0, built.stdout + built.stderr
    tasks = [t["source"].split("/")[-1].removesuffix(".ipynb") for t in
             __import__("yaml").safe_load((root / "pipeline.yaml").read_text())["tasks"]]
    assert len(tasks) == 7
    for name in tasks:
        assert (root / "products" / name / f"{name}.ipynb").is_file(), name
    # the last step read what the earlier ones handed on (best_name from evaluation, results_df from modelling)
    summary = json.loads((root / "products/summary/summary.ipynb").read_text())
    errors = [o for c in summary["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []


def test_a_notebook_on_the_old_import_paths_runs_and_sees_the_new_modules(tmp_path: Path) -> None:
    root = tmp_path / "p"
    write_notebook(root / "notebooks/old.ipynb", [
        ("params", 'upstream = None\nproduct = {"nb": "products/old/old.ipynb", "data": "products/old/same.json"}'),
        ("code", OLD_IMPORTS)])
    (root / "pipeline.yaml").write_text("tasks:\n- source: notebooks/old.ipynb\n  product:\n"
                                        "    nb: products/old/old.ipynb\n    data: products/old/same.json\n")
    _git_init(root)
    built = run_mlnb(root, "build", "--no-dvc")
    assert built.returncode == 0, built.stdout + built.stderr
    assert json.loads((root / "products/old/same.json").read_text()) == [True] * 8
