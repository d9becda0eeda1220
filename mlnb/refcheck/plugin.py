"""pytest glue for ``tests/nbval/`` (its ``conftest.py`` and ``test_references.py`` import these).

* ``test_reference_is_current[<task>]``: the blessed reference still holds the task notebook's
  code (a plain pytest test, cheap, no kernel);
* before the first nbval cell runs (``pytest --nbval``), the nbval workspace is built with
  ``env.ci.yaml`` once per session and the kernels nbval starts inherit where it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from mlnb.errors import MlnbError
from mlnb.io import find_project_root
from mlnb.refcheck import api, reference, workspace

_state: dict[str, Any] = {}


def _root(config: pytest.Config) -> Path:
    here = Path(str(config.rootpath))
    for arg in config.args:
        candidate = Path(arg.split("::")[0]).resolve()
        if candidate.exists():
            here = candidate if candidate.is_dir() else candidate.parent
            break
    return find_project_root(here)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "nbval_task" in metafunc.fixturenames:
        root = find_project_root(Path(str(metafunc.definition.path)).parent)
        spec = api.ci_spec(root)
        names = list(dict.fromkeys([*spec.tasks, *api.reference_names(root)]))
        metafunc.parametrize("nbval_task", names)


def test_reference_is_current(nbval_task: str, request: pytest.FixtureRequest) -> None:
    root = find_project_root(Path(str(request.node.path)).parent)
    why = api.problem(root, nbval_task)
    if why:
        pytest.fail(why, pytrace=False)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Build the workspace before nbval starts the first kernel (it starts it in the collector's
    setup, which runs after this hook); the kernel inherits the environment set here."""
    if type(item).__name__ != "IPyNbCell":
        return
    if "error" in _state:
        raise _state["error"]
    if "ws" not in _state:
        root = _root(item.config)
        try:
            _state["ws"] = workspace.prepare(root)
        except MlnbError as exc:  # one line, no traceback, on every cell
            _state["error"] = pytest.fail.Exception(str(exc), pytrace=False)
            raise _state["error"] from None
        os.environ.update(workspace.execution_env(_state["ws"].path))
    task = Path(str(item.path)).stem
    why = _state["ws"].failed.get(task)
    if why:  # this notebook's task could not be built: a failure of this notebook only
        pytest.fail(why, pytrace=False)
    cell = getattr(item, "cell", None)
    if cell is not None and cell.get("id") == reference.INJECTED_ID:
        # nbval runs `item.cell.source`: run the injected cell with the current CI parameters, as
        # `mlnb nbval check` does, so a changed param shows up as the outputs it changes
        spec = _state.setdefault("spec", api.ci_spec(_root(item.config)))
        if task in spec.tasks:
            cell.source = reference.injected_source(spec, spec.tasks[task], workspace.CI_ENV)
