"""Debugging a failed task where it failed: the failure manifest, the debug notebook, resume plans.

Task failure life cycle (the snapshot itself is taken in the kernel, see
:mod:`mlnb.engine.checkpoint`)::

    running --cell raises--> the kernel's frozen pre-cell copy writes .mlnb/snapshots/<task>/
        --> mlnb build quarantines the partial notebook (products/_failed/<task>/) and writes
            manifest.json beside the snapshot: task, failing cell (index, id), error, source and
            per-cell hashes, params, upstream product hashes, time, what the snapshot holds
    running --kernel dies--> manifest.json says so (no snapshot: nothing to restore)
    failed --mlnb debug TASK--> products/_failed/<task>/<task>.debug.ipynb: restore cell + the cells
        from the failing one on
    failed --mlnb build --resume--> if the cells before the failing one, the params and the
        upstream products are unchanged: the kernel restores the snapshot and runs from the
        failing cell; otherwise the task runs from the start and the build says why
    failed --the task succeeds--> .mlnb/snapshots/<task>/ is deleted
    failed --a later build runs the task (either way)--> the failed build run's tag
        mlnb.debuggable becomes "false": Debug is offered only for the current failure
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb.adapters.mlflow.tracking import DEBUG_ENV
from mlnb.adapters.ploomber import pipeline, uptodate
from mlnb.core import settings, sources
from mlnb.core.io import atomic_write, shown
from mlnb.core.notebooks import cell_source, read_notebook, read_source_notebook
from mlnb.core.outcomes import CellError, CheapCells, FailedCell, FailureManifest
from mlnb.core.project import Project
from mlnb.core.spec import PipelineSpec, TaskSpec
from mlnb.engine import checkpoint
from mlnb.errors import StaleFailure, UserInputError
from mlnb.services.explain import upstream_hashes

if TYPE_CHECKING:
    from mlnb.core import payloads  # annotations only: TypedDicts cost start-up time

MANIFEST = "manifest.json"
_KERNEL_KINDS = (sources.NOTEBOOK, sources.SCRIPT)  # the task kinds that run in a kernel, cell by cell
DEBUGGABLE_TAG = "mlnb.debuggable"  # on a failed build run: "true" while its failure can be debugged
# In the first code cell of a debug notebook: task runs go to a throwaway store (mlnb.tracking).
NO_TRACKING = f"os.environ[{DEBUG_ENV!r}] = '1'  # MLflow runs opened here stay out of the experiment\n"


def snapshot_dir(root: Path, task: str) -> Path:
    return settings.state_dir(root) / "snapshots" / task


def partial_notebook(spec: PipelineSpec, task: TaskSpec) -> Path:
    return spec.root / "products" / pipeline.FAILED_DIR / task.name / pipeline.partial_notebook_name(task)


def kernel_env(spec: PipelineSpec, name: str, limit_mb: float) -> dict[str, str]:
    """What the task's kernel needs to snapshot on failure."""
    return {checkpoint.ENV: str(snapshot_dir(spec.root, name)), checkpoint.LIMIT_ENV: str(limit_mb)}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cell_hashes(notebook: Path) -> list[dict[str, str]]:
    """Per source cell (of an ``.ipynb`` or a jupytext script): id, type and SHA-256 of its source (what a
    resume compares)."""
    return [{"id": str(c.get("id", "")), "type": c.get("cell_type", ""), "sha256": _sha(cell_source(c))}
            for c in read_source_notebook(notebook).get("cells", [])]


def _source_sha(task: TaskSpec) -> str:
    """SHA-256 of the task's code: a notebook's as Ploomber stores it, a script's text."""
    if task.kind == sources.SCRIPT:
        return hashlib.sha256(task.source.read_bytes()).hexdigest()
    return _sha(uptodate.source_code(task.source))


def record_failure(spec: PipelineSpec, outcome: pipeline.TaskOutcome, build_run_id: str | None = None) -> Path | None:
    """Write the failure manifest of a failed task beside its snapshot (if the kernel took one); None for a
    task that runs in no kernel (a function, a SQL script: :func:`manifest` refuses them, nothing to record)."""
    task = spec.tasks[outcome.name]
    if task.kind not in _KERNEL_KINDS:
        return None
    out = snapshot_dir(spec.root, task.name)
    out.mkdir(parents=True, exist_ok=True)
    failure = outcome.failure
    contents_path = out / checkpoint.CONTENTS
    try:
        contents = json.loads(contents_path.read_text()) if contents_path.exists() else None
    except (OSError, ValueError):  # a snapshot the kernel could not finish: none, rather than a wrong one
        contents = None
    died = failure is not None and failure.ename == "DeadKernelError"
    try:
        saved = json.loads((out / checkpoint.CHEAP).read_text())
        cheap = CheapCells(float(saved["seconds_before"]), float(saved["threshold_s"]))
    except (OSError, ValueError, TypeError, KeyError):
        cheap = None
    manifest = FailureManifest(
        task=task.name,
        build_run_id=build_run_id,
        time=time.time(),
        cell=FailedCell(failure.cell_index, failure.cell_id, failure.first_line)
        if failure and failure.cell_index >= 0 else None,  # -1: not a cell (a hook, missing products, ...)
        error=CellError(failure.ename, failure.evalue) if failure else None,
        kernel_died=died,
        source=str(task.source.relative_to(spec.root)),
        source_sha256=_source_sha(task),
        cells=cell_hashes(task.source),
        params=uptodate.params_for(task, spec.root),
        upstream=upstream_hashes(spec, task),
        partial_notebook=str(partial_notebook(spec, task).relative_to(spec.root)),
        snapshot=None if died or cheap else contents,
        cheap=cheap,  # no snapshot taken: the cells before the failing one took under the threshold
    )
    if died:  # a copy taken before a kernel was killed describes a cell that did not fail
        for name in (checkpoint.NAMESPACE, checkpoint.CONTENTS):
            (out / name).unlink(missing_ok=True)
    with atomic_write(out / MANIFEST, encoding="utf-8") as fh:
        fh.write(manifest.to_json())
    return out / MANIFEST


def can_debug(root: Path, name: str) -> bool:
    """A failure on record that ``mlnb debug`` can open (a snapshot, or cheap cells to re-run)."""
    out = snapshot_dir(root, name)
    return (out / checkpoint.NAMESPACE).exists() or (out / checkpoint.CHEAP).exists()


def clear(spec: PipelineSpec, name: str) -> None:
    """The task succeeded: its failure snapshot is stale."""
    shutil.rmtree(snapshot_dir(spec.root, name), ignore_errors=True)


def manifest(spec: PipelineSpec, name: str) -> FailureManifest:
    if name not in spec.tasks:
        raise UserInputError(f"pipeline.yaml: no task named {name!r} (tasks: {', '.join(spec.tasks)})")
    task = spec.tasks[name]
    if task.kind not in _KERNEL_KINDS:  # no kernel, so no snapshot or cells to re-run
        what = task.what
        raise UserInputError(f"task {name}: {what} ({task.source.name}) runs as Ploomber runs it, not in a kernel: "
                             "`mlnb debug` and `--resume` cover notebook and script tasks only")
    path = snapshot_dir(spec.root, name) / MANIFEST
    try:
        return FailureManifest.read(path, shown(path, spec.root))
    except OSError:
        raise UserInputError(f"task {name}: no failure on record ({shown(path, spec.root)} is missing); "
                             f"it did not fail in the last `mlnb build`") from None


@dataclass(frozen=True)
class ResumePlan:
    task: str
    ok: bool
    reason: str  # why it resumes at a cell, or why it runs from the start
    cell_id: str = ""
    cell_index: int = 0
    partial: dict[str, Any] | None = None
    snapshot: Path | None = None


def resume_plan(spec: PipelineSpec, name: str) -> ResumePlan | None:
    """How ``mlnb build --resume`` runs task ``name`` (None: it has no failure on record)."""
    try:
        found = manifest(spec, name)
    except UserInputError:
        return None
    task = spec.tasks[name]
    cell = found.cell

    def start(why: str) -> ResumePlan:
        return ResumePlan(name, False, f"runs from the start: {why}")

    if found.kernel_died or not found.snapshot:
        if found.kernel_died:
            return start("its kernel died, so there is no snapshot")
        if found.cheap:
            return start(f"the cells before the failing one took {found.cheap.seconds_before:.1f} s, "
                         f"less than a snapshot is worth (MLNB_SNAPSHOT_AFTER_S={found.cheap.threshold_s:g})")
        return start("no snapshot")
    if cell is None:
        return start("it failed before any cell ran")
    partial = partial_notebook(spec, task)
    if not partial.exists():
        return start(f"the partial notebook {partial.relative_to(spec.root)} is gone")
    now = cell_hashes(task.source)
    index = next((i for i, c in enumerate(now) if c["id"] == cell.id), None)
    if index is None and task.kind == sources.SCRIPT and cell.index < len(now):
        index = cell.index  # a script's cells have no ids (each run's notebook gets new ones): by position
    if index is None:
        return start(f"the failing cell (id {cell.id}) is no longer in {task.source.name}")
    before_then = found.cells[:cell.index]
    changed = [i for i, (a, b) in enumerate(zip(before_then, now[:index], strict=False)) if a != b]
    if len(before_then) != index or changed:
        where = f"cell {changed[0]}" if changed else "the cells before it"
        return start(f"{where} changed since the failure (cells before the failing one must be unchanged)")
    if found.params != uptodate.params_for(task, spec.root):
        return start("its params changed")
    upstream = upstream_hashes(spec, task)
    if found.upstream != upstream:
        differ = sorted(u for u in upstream if found.upstream.get(u) != upstream[u])
        return start(f"upstream {', '.join(differ)} changed")
    snap = snapshot_dir(spec.root, name)
    return ResumePlan(name, True, f"resumes at cell {index} from the snapshot taken before it", cell.id,
                      index, read_notebook(partial), snap)


def debug_cells(spec: PipelineSpec, name: str) -> tuple[FailureManifest, FailedCell, list[dict[str, Any]]]:
    """The manifest, its failing cell and the source cells from the failing one on (for the notebook or pdb)."""
    found = manifest(spec, name)
    if found.kernel_died:
        died = found.cell
        raise UserInputError(f"task {name}: its kernel died at cell {died.index if died else None} "
                             f"({(died.first_line if died else '')[:40]!r}), so no snapshot could be taken; open "
                             f"{found.partial_notebook} and run the cells to reproduce it")
    if found.cell is None:
        raise UserInputError(f"task {name}: it failed before any cell ran, so there is nothing to restore: "
                             f"fix what `mlnb build` reported")
    cells: list[dict[str, Any]] = read_source_notebook(spec.tasks[name].source).get("cells", [])
    if found.cheap:  # no snapshot: the cheap cells before the failing one run again instead
        return found, found.cell, cells
    if not found.snapshot:
        raise UserInputError(f"task {name}: no namespace snapshot on record (built with --engine papermill?)")
    cell_id = found.cell.id
    index = next((i for i, c in enumerate(cells) if c.get("id") == cell_id), found.cell.index)
    return found, found.cell, cells[index:]


def write_debug_notebook(spec: PipelineSpec, name: str) -> Path:
    """``products/_failed/<task>/<task>.debug.ipynb``: a restore cell, then the failing cell on."""
    found, cell, cells = debug_cells(spec, name)
    if found.cheap:
        return _rerun_notebook(spec, name, found, cell, found.cheap, cells)
    snap = snapshot_dir(spec.root, name)
    snapshot = found.snapshot or {}
    lost = {**snapshot.get("unpicklable", {}), **{n: "over the snapshot size limit" for n in snapshot["too_big"]}}
    restore = (f"# mlnb: the namespace of task {name!r} just before cell {cell.index} failed\n"
               f"import os\nos.chdir({str(spec.root)!r})\n{NO_TRACKING}"
               f"from mlnb.engine.checkpoint import restore as _mlnb_restore\n"
               f"_mlnb_restore(globals(), {str(snap)!r})\n"
               f"print('restored:', ', '.join({snapshot['saved'] + sorted(snapshot['modules'])!r}))\n"
               + (f"print('not restored:', {lost!r})\n" if lost else ""))
    error = found.error
    intro = (f"**Debug notebook for task `{name}`** (written by `mlnb debug`). The first cell restores "
             f"the variables the failing cell started from; the cells after it are the task's, from the "
             f"failing cell (cell {cell.index}: `{error.ename if error else None}: "
             f"{(error.evalue if error else '')[:120]}`) on. Edits here do not change the task notebook.")
    return _write_debug(spec, name, intro, {"id": "mlnb-debug-restore", "source": restore,
                                            "metadata": {"tags": ["mlnb-restore"]}},
                        [{**c, "outputs": [], "execution_count": None} if c.get("cell_type") == "code" else c
                         for c in cells])


def _write_debug(spec: PipelineSpec, name: str, intro: str, first: dict[str, Any],
                 cells: list[dict[str, Any]]) -> Path:
    """``products/_failed/<task>/<task>.debug.ipynb``: the intro, ``first`` (a code cell), ``cells``."""
    head = [{"cell_type": "markdown", "id": "mlnb-debug-intro", "metadata": {}, "source": intro},
            {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], **first}]
    metadata = read_source_notebook(spec.tasks[name].source).get("metadata", {})
    partial = partial_notebook(spec, spec.tasks[name])
    try:  # the kernel it ran on, as that kernel describes itself: JupyterLab opens the notebook unmodified
        ran = read_notebook(partial).get("metadata", {})
        metadata = {**metadata, **{k: ran[k] for k in ("kernelspec", "language_info") if k in ran}}
    except Exception:
        pass
    nb = {"cells": [*head, *cells], "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}
    path = partial.with_name(f"{name}.debug.ipynb")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, encoding="utf-8") as fh:
        fh.write(json.dumps(nb, indent=1) + "\n")
    return path


def pdb_plan(spec: PipelineSpec, name: str) -> tuple[FailureManifest, list[dict[str, Any]], Path | None]:
    """For ``mlnb debug --pdb``: the manifest, the cells to run and the snapshot to restore first
    (None when the task failed early: then all its cells run, with the params it ran with)."""
    found, _, cells = debug_cells(spec, name)
    if not found.cheap:
        return found, cells, snapshot_dir(spec.root, name)
    current = {c.get("id"): c for c in cells}
    try:
        ran = read_notebook(spec.root / found.partial_notebook).get("cells", [])
    except Exception:
        ran = cells
    return found, [current.get(c.get("id"), c) for c in ran], None


def _rerun_notebook(spec: PipelineSpec, name: str, found: FailureManifest, cell: FailedCell, cheap: CheapCells,
                    cells: list[dict[str, Any]]) -> Path:
    """The debug notebook of a task that failed early: the cells as they ran (the partial notebook,
    with the parameters Ploomber injected), outputs cleared, the current source of each cell."""
    error = found.error
    current = {c.get("id"): c for c in cells}
    try:
        ran = read_notebook(spec.root / found.partial_notebook).get("cells", [])
    except Exception:
        ran = cells
    setup = (f"# mlnb: the cells before the failing one took {cheap.seconds_before:.1f} s: "
             f"they run again instead of a snapshot\nimport os\nos.chdir({str(spec.root)!r})\n{NO_TRACKING}")
    intro = (f"**Debug notebook for task `{name}`** (written by `mlnb debug`): the task's cells with the "
             f"parameters it ran with; it failed at cell {cell.index} (`{error.ename if error else None}: "
             f"{(error.evalue if error else '')[:120]}`).")
    out = []
    for ran_cell in ran:
        fresh = dict(current.get(ran_cell.get("id"), ran_cell))
        if fresh.get("cell_type") == "code":
            fresh.update(outputs=[], execution_count=None)
        fresh["metadata"] = {k: v for k, v in (fresh.get("metadata") or {}).items() if k != "papermill"}
        out.append(fresh)
    return _write_debug(spec, name, intro, {"id": "mlnb-debug-setup", "source": setup}, out)


def build_of_failure(root: Path, name: str) -> str | None:
    try:
        return FailureManifest.read(snapshot_dir(root, name) / MANIFEST).build_run_id
    except (OSError, UserInputError):
        return None


def check_current(spec: PipelineSpec, name: str, build_run_id: str) -> None:
    """Refuse (409) to debug build ``build_run_id``'s failure of task ``name`` once a later build ran it."""
    if name not in spec.tasks:
        raise UserInputError(f"pipeline.yaml: no task named {name!r} (tasks: {', '.join(spec.tasks)})")
    if not re.fullmatch(r"[0-9a-f]{32}", build_run_id):
        raise UserInputError("run_id: expected an MLflow run id (32 lowercase hex digits)")
    if not (snapshot_dir(spec.root, name) / MANIFEST).exists():
        raise StaleFailure(f"task {name}: the failure of build {build_run_id[:8]} is no longer current: a later "
                           f"build ran {name} without it, so there is nothing to debug")
    current = build_of_failure(spec.root, name)
    if current and current != build_run_id:
        raise StaleFailure(f"task {name}: the failure of build {build_run_id[:8]} is no longer current: "
                           f"{name} failed again in build {current[:8]}; debug that one")


def debug_notebook_for(project: Project, task: str, server_root: Path,
                       build_run_id: str | None = None) -> payloads.DebugNotebook:
    """For JupyterLab's Debug button: write the debug notebook (of the failure of ``build_run_id``
    when given: refused once a later build ran the task); its path relative to the server's root
    directory (what JupyterLab opens)."""
    spec = project.spec
    if build_run_id is not None:
        check_current(spec, task, build_run_id)
    path = write_debug_notebook(spec, task)
    try:
        rel = path.resolve().relative_to(server_root.resolve())
    except ValueError:
        raise UserInputError(f"the debug notebook {path} is outside the Jupyter server's root directory") from None
    return {"path": rel.as_posix(), "task": task}
