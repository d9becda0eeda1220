"""What the Pipeline panel shows: the DAG, each task's state and the running build (pure: no Jupyter).

A task's state, most telling first::

    running     the build running now started it and it has not finished (with "cell k of n")
    failed      its last run failed: the failure manifest (``mlnb.services.debug``) names the cell and error
    outdated    ``mlnb status --explain`` has reasons (:func:`mlnb.services.explain.explain`, reused as is)
    up to date  nothing to do

Running builds are known from :mod:`mlnb.core.build_events` (what the build reports) and
:mod:`mlnb.core.buildlock` (whether a build process holds the project's lock, and its pid), whoever
started the build. Paths are given relative to the Jupyter server's root directory, as JupyterLab
opens them, or None when a file is outside it or does not exist.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlnb.core import build_events, buildlock, settings
from mlnb.core.outcomes import CellError, FailureManifest, TaskStatus
from mlnb.core.project import Project
from mlnb.core.spec import PipelineSpec
from mlnb.errors import UserInputError

UP_TO_DATE, OUTDATED, FAILED, RUNNING = "up to date", "outdated", "failed", "running"
_MANIFEST = "manifest.json"  # mlnb.debug.MANIFEST, read here without importing the debugger


@dataclass
class TaskView:
    name: str
    upstream: list[str]
    state: str
    reasons: list[str] = field(default_factory=list)
    source: str | None = None  # the task's notebook
    executed: str | None = None  # its executed notebook (or the partial one of a failed run)
    failure: dict[str, Any] | None = None  # {"cell": N, "error": "ValueError: ...", "line": "x = f()"}


@dataclass
class BuildView:
    """The current (or last) build, replayed from its events; ``running`` comes from the lock."""

    running: bool = False
    pid: int | None = None
    origin: str | None = None
    force: bool = False
    resume: bool = False
    started: float | None = None
    finished: bool = False
    ok: bool | None = None
    interrupted: bool = False
    error: str | None = None
    run_id: str | None = None
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {state, cell, cells, seconds}


def relative(path: Path, server_root: Path | None) -> str | None:
    """``path`` as JupyterLab names it (relative to ``server_root``), when it exists inside it."""
    if server_root is None or not path.exists():
        return None
    try:
        return path.resolve().relative_to(server_root.resolve()).as_posix()
    except ValueError:
        return None


def failure_of(root: Path, task: str) -> dict[str, Any] | None:
    """The failing cell and error of ``task``'s last run, from its failure manifest, or None."""
    path = settings.state_dir(root) / "snapshots" / task / _MANIFEST
    try:
        found = FailureManifest.read(path)
    except (OSError, UserInputError):
        return None
    cell, error = found.cell, found.error
    return {"cell": cell.index if cell else None, "line": cell.first_line if cell else "",
            "error": CellError(error.ename or "Error", error.evalue).describe() if error else "the kernel died",
            "notebook": found.partial_notebook}


def task_views(spec: PipelineSpec, server_root: Path | None) -> list[TaskView]:
    """Every task in pipeline order with its state, as ``mlnb status --explain`` and the failure
    manifests describe it (a running build is laid over this by :func:`overlay`)."""
    from mlnb.services.explain import explain

    views = []
    for found in explain(spec):
        task = spec.tasks[found.task]
        failure = failure_of(spec.root, task.name) if found.outdated else None
        executed = task.notebook_product
        if failure is not None and failure.get("notebook"):
            executed = spec.root / failure["notebook"]
        state = FAILED if failure else OUTDATED if found.outdated else UP_TO_DATE
        views.append(TaskView(task.name, list(task.upstream), state, [c.summary for c in found.changes],
                              relative(task.source, server_root), relative(executed, server_root),
                              failure))
    return views


def replay(events: list[dict[str, Any]]) -> BuildView:
    """The build that ``events`` (one build's, in order) describe."""
    view = BuildView()
    for event in events:
        apply(view, event)
    return view


def apply(view: BuildView, event: dict[str, Any]) -> None:
    kind = event.get("event")
    task = event.get("task")
    if kind == "build-started":
        view.__init__()  # type: ignore[misc]  # a new build
        view.pid, view.origin, view.started = event.get("pid"), event.get("origin"), event.get("t")
        view.force, view.resume = bool(event.get("force")), bool(event.get("resume"))
    elif kind == "task-started" and isinstance(task, str):
        view.tasks[task] = {"state": RUNNING, "cell": 0, "cells": None, "seconds": None}
    elif kind == "cell" and isinstance(task, str):
        view.tasks.setdefault(task, {"state": RUNNING, "seconds": None})
        view.tasks[task].update(cell=event.get("cell"), cells=event.get("cells"))
    elif kind == "task-finished" and isinstance(task, str):
        status = event.get("status")
        view.tasks.setdefault(task, {"cell": None, "cells": None})
        view.tasks[task].update(state=UP_TO_DATE if status == TaskStatus.EXECUTED else FAILED,
                                seconds=event.get("seconds"))
    elif kind == "build-finished":
        view.finished, view.ok, view.interrupted = True, event.get("ok"), bool(event.get("interrupted"))
        view.error, view.run_id = event.get("error"), event.get("run_id")


def build_view(root: Path) -> BuildView:
    """The current or last build of ``root``: its events, and whether a process still holds the lock."""
    view = replay(build_events.read_all(root))
    pid = buildlock.holder(root)
    view.running = pid is not None
    if pid is not None and view.pid != pid:  # its events are not written yet (or not readable)
        view.pid, view.finished, view.tasks = pid, False, {}
    return view


def overlay(views: list[TaskView], build: BuildView) -> list[TaskView]:
    """The running build's task states over the tasks' states on disk."""
    if not build.running:
        return views
    for view in views:
        live = build.tasks.get(view.name)
        if live is None:
            continue
        if live["state"] == RUNNING:
            view.state = RUNNING
        elif live["state"] == UP_TO_DATE:
            view.state, view.reasons, view.failure = UP_TO_DATE, [], None
        else:  # its failure manifest is written when the build ends
            view.state = FAILED
    return views


def snapshot(project: Project, server_root: Path | None) -> dict[str, Any]:
    """The Pipeline panel's whole picture of ``project``; raises mlnb errors (bad spec)."""
    root = project.root
    build = build_view(root)  # before the tasks: a build that ends meanwhile is caught by its events
    spec = project.spec
    tasks = overlay(task_views(spec, server_root), build)
    return {"project": relative(root, server_root) if server_root else None,
            "tasks": [asdict(t) for t in tasks], "build": asdict(build)}
