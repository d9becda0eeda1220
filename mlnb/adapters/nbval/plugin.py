"""pytest glue for ``tests/nbval/`` (its ``conftest.py`` and ``test_references.py`` import these).

* ``test_reference_is_current[<task>]``: the blessed reference still holds the task notebook's
  code (a plain pytest test, cheap, no kernel);
* before the first nbval cell runs (``pytest --nbval``), the nbval workspace is built with
  ``env.ci.yaml`` once per session and the kernels nbval starts inherit where it is;
* while a cell runs, a kernel that dies fails that cell at once (stock nbval waits for a reply
  that never comes until ``--nbval-cell-timeout``, 2000 s by default);
* a session that ran every reference records its result for the commit (:mod:`.record`), which the
  promotion policy's ``nbval`` requirement reads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from queue import Empty
from typing import Any

import pytest

from mlnb.adapters.nbval import api, record, reference, workspace
from mlnb.core.io import find_project_root
from mlnb.errors import MlnbError

__all__ = ["pytest_generate_tests", "pytest_runtest_call", "pytest_runtest_logreport", "pytest_runtest_setup",
           "pytest_sessionfinish", "test_reference_is_current"]
KERNEL_POLL_SECONDS = 1.0
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


def _watching(item: Any, await_reply: Callable[..., Any]) -> Callable[..., Any]:
    """nbval's ``await_reply``, in short waits that check the kernel is still alive in between."""
    kernel = item.parent.kernel

    def wait(msg_id: str, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while True:
            left = KERNEL_POLL_SECONDS if deadline is None else deadline - time.monotonic()
            try:
                return await_reply(msg_id, timeout=max(0.0, min(KERNEL_POLL_SECONDS, left)))
            except Empty:
                if not kernel.is_alive():
                    cell_id = (getattr(item, "cell", None) or {}).get("id", "?")
                    item.raise_cell_error(f"the kernel died while executing Cell {item.cell_num} (id {cell_id}); "
                                          "no Python exception was raised")
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return wait


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    kernel = getattr(getattr(item, "parent", None), "kernel", None) if type(item).__name__ == "IPyNbCell" else None
    if kernel is not None:  # one kernel per notebook; the wrapper names the cell running now
        original = vars(kernel).setdefault("_mlnb_await_reply", kernel.await_reply)
        kernel.await_reply = _watching(item, original)
    yield


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Which references ran (``<ref>.ipynb::Cell N``), and which failed, for the session's record."""
    notebook = report.nodeid.split("::")[0]
    if not notebook.endswith(".ipynb"):
        return
    name = Path(notebook).stem
    _state.setdefault("ran", set()).add(name)
    if report.failed:
        _state.setdefault("bad", set()).add(name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ran, bad = _state.get("ran", set()), _state.get("bad", set())
    if not ran:
        return
    try:
        root = _root(session.config)
        if not set(api.reference_names(root)) <= ran:  # a partial run vouches for nothing
            return
        summary = f"{len(ran) - len(bad)} of {len(ran)} references passed" + (
            f"; failed: {', '.join(sorted(bad))}" if bad else "")
        record.write(root, not bad and exitstatus == 0, sorted(ran), summary, "pytest --nbval")
    except MlnbError:
        return
