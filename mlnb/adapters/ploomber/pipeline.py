"""The only module that imports Ploomber: load the DAG, report status, build.

Task life cycle under ``mlnb build`` (compare Ploomber's ``tasks/abc.py``)::

    outdated --(run: metadata deleted first)--> executing --ok--> executed  (Ploomber saves metadata)
        ^                   |
        |                   +--raise / kernel died--> failed:
        |                          partial notebook and any products are moved to
        |                          products/_failed/<task>/, the task's metadata is
        +------------------------- deleted, so the next build re-runs it.
    up to date --------------------------------> skipped

A task's up-to-date record (its products' ``.<name>.metadata`` files) is deleted before its first cell
runs, so a process killed at any moment (``kill -9``, a power cut) leaves it outdated, never a partial
notebook that looks fresh; Ploomber itself only rewrites the record after success.

The rest of mlnb speaks :class:`TaskState` / :class:`TaskOutcome` and never sees a
Ploomber object, so Ploomber (unmaintained since 2024-09) can be replaced here alone.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.core.build_events import Progress
from mlnb.core.io import fsync_dir
from mlnb.core.notebooks import read_notebook
from mlnb.core.outcomes import CellFailure, TaskStatus, find_failure
from mlnb.core.spec import PipelineSpec, TaskSpec
from mlnb.errors import RemoteTaskFailed, SpecError, TaskFailed, UnsafePathError

FAILED_DIR = "_failed"


@dataclass(frozen=True)
class TaskState:
    name: str
    outdated: bool
    reasons: tuple[str, ...]


@dataclass
class TaskOutcome:
    name: str
    status: TaskStatus
    elapsed: float = 0.0
    notebook: Path | None = None
    failure: CellFailure | None = None
    kept: list[Path] = field(default_factory=list)


def _quiet_ploomber() -> None:
    for name in ("ploomber", "papermill", "ploomber_core"):
        logger = logging.getLogger(name)
        logger.addHandler(logging.NullHandler())
        logger.propagate = False


ENGINES = ("fork", "papermill")


def open_dag(spec: PipelineSpec, env: dict[str, Any], engine: str = "papermill") -> Any:
    """A rendered Ploomber DAG for ``spec`` with ``env`` (after overrides). With ``engine="fork"``
    notebook tasks run on papermill's ``mlnb`` engine (pre-started forked kernels, see
    :mod:`mlnb.engine`); ``"papermill"`` is the stock nbclient engine."""
    from mlnb.adapters.mlflow.tracking import telemetry_off

    telemetry_off()
    _quiet_ploomber()
    from ploomber.spec import DAGSpec

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "placeholders declared but unused": env.yaml is shared
            if spec.factory is not None:  # a Python factory makes the DAG (mlnb.adapters.ploomber.factory)
                from mlnb.adapters.ploomber.factory import make_dag

                dag = make_dag(spec.factory, spec.root, spec.path.parent if spec.path.is_file() else None)
            elif spec.files is not None:  # directory mode, as `ploomber build --entry-point PATTERN` makes it
                folder = spec.root / spec.files
                made = DAGSpec.from_directory(str(folder)) if folder.is_dir() else DAGSpec.from_files(spec.files)
                dag = made.to_dag()
            else:
                dag = DAGSpec(str(spec.path), env=env).to_dag()
            dag.render(show_progress=False)
        if engine == "fork":
            from mlnb.engine import kernel, papermill_engine

            papermill_engine.register()
            for task in dag.values():
                if getattr(task, "executor", None) == "papermill" and hasattr(task, "executor_params"):
                    task.executor_params["engine_name"] = kernel.ENGINE_NAME
                    task.executor_params.setdefault("progress_bar", False)  # bars of parallel tasks garble
    except SpecError:
        raise
    except Exception as exc:
        raise SpecError(f"{spec.path.name}: ploomber rejected the spec: {_reason(exc)}") from None
    return dag


def _reason(exc: BaseException) -> str:
    """The informative line of a Ploomber error (skipping its ``=== DAG render failed ===`` banners)."""
    lines = [ln.strip() for ln in str(exc).splitlines()]
    useful = [ln for ln in lines if ln and not set(ln) <= set("=-") and "render failed" not in ln
              and not ln.startswith(("Traceback", "Need help?", "Please ", "https://"))]
    errors = [ln for ln in useful if "Error" in ln.split(":")[0]]
    return (errors or useful or [type(exc).__name__])[-1 if errors else 0]


def status(spec: PipelineSpec, dag: Any) -> list[TaskState]:
    """Which tasks are outdated and why, without running anything."""
    states = []
    for name, task in spec.tasks.items():
        product = dag[name].product
        reasons: list[str] = []
        if not product.exists():
            reasons.append("product missing")
        elif product.metadata.timestamp is None:
            reasons.append("no record of a successful run")
        else:
            meta = product.metadata.to_dict()  # MetaProduct.metadata.params is broken in ploomber 0.23
            if product._outdated_code_dependency():
                old = meta.get("params") or {}
                new = dag[name].params.to_json_serializable(params_only=True)
                changed = sorted(k for k in set(old) | set(new) if k != "resources_" and old.get(k) != new.get(k))
                if changed:
                    reasons.extend(f"param {k}: {old.get(k)!r} -> {new.get(k)!r}" for k in changed)
                if meta.get("stored_source_code") != str(dag[name].source):
                    reasons.append(f"source changed: {task.source.relative_to(spec.root)}")
                if not reasons:
                    reasons.append("resource file changed")
            for up in task.upstream:
                up_product = dag[up].product
                if up_product.metadata.timestamp is None or up_product.metadata.timestamp > product.metadata.timestamp:
                    reasons.append(f"upstream {up} is newer")
                elif up_product._is_outdated():
                    reasons.append(f"upstream {up} is outdated")
        states.append(TaskState(name, bool(reasons), tuple(reasons)))
    return states


def ploomber_up_to_date(dag: Any) -> dict[str, bool]:
    """Ploomber's own verdict after rendering: the tasks it would skip (a check of :mod:`.uptodate`)."""
    from ploomber.constants import TaskStatus as PloomberStatus

    return {name: dag[name].exec_status == PloomberStatus.Skipped for name in dag}


def build(spec: PipelineSpec, dag: Any, force: bool = False, only: str | None = None, jobs: int = 1,
          progress: Progress | None = None, interrupt: Callable[[bool], None] | None = None,
          task_options: Callable[[str], Any] | None = None,
          remote: Callable[[str], None] | None = None) -> tuple[list[TaskOutcome], bool]:
    """Run the DAG; return per-task outcomes and whether everything succeeded.

    With ``only``, run exactly that task (forced; its upstream products must exist, as when
    ``dvc repro`` runs one stage). A failed task's products are quarantined (see module docstring).
    With ``progress`` (a ``(event, task, seconds)`` callback), tasks run on mlnb's threaded
    executor, up to ``jobs`` at a time; without it, on Ploomber's own serial executor. With ``remote``, a
    task's code runs elsewhere (a cluster worker): ``remote(name)`` returns once the task's products are in
    place (or raises with its partial notebook there), and the rest of the task's life cycle (checks, hooks,
    metadata, quarantine) happens here, as for a local task."""
    from ploomber.constants import TaskStatus as PloomberStatus
    from ploomber.exceptions import DAGBuildEarlyStop, DAGBuildError

    if only is not None:
        return _build_one(spec, dag, only)
    for name, task in spec.tasks.items():
        _forget_before_running(dag[name], task)
    if progress is not None:
        from mlnb.adapters.ploomber.executor import ThreadedExecutor

        dag.executor = ThreadedExecutor(jobs, progress, interrupt, task_options)
    if remote is not None:
        from mlnb.adapters.ploomber.executor import uses_client

        for name in spec.tasks:
            if not uses_client(dag[name]):  # a database task runs here: its client is this process's
                dag[name].run = _remotely(remote, name)
    raised, said = False, ""
    try:
        with _rendered_once(dag, force):
            dag.build(force=force, show_progress=progress is None)
    except (DAGBuildError, DAGBuildEarlyStop) as exc:
        raised, said = True, str(exc)
    errors: dict[str, BaseException] = dict(getattr(dag.executor, "errors", {}))
    for name in spec.tasks:  # Ploomber's serial executor only says it in its message
        if name not in errors and f"Error building task {name!r}: {_RAN_OK}" in said:
            errors[name] = RuntimeError(_RAN_OK)
    outcomes = []
    for name, task in spec.tasks.items():
        st = dag[name].exec_status
        nb_path = _executed_notebook(task)
        kept = nb_path if nb_path and nb_path.exists() else None
        if st == PloomberStatus.Executed:
            outcomes.append(TaskOutcome(name, TaskStatus.EXECUTED, _duration(nb_path), nb_path))
        elif st == PloomberStatus.Errored and not raised:
            # Ploomber ends a build without an exception only on DAGBuildEarlyStop (a task, its on_finish
            # hook or the DAG's): a graceful stop, exit 0; the task's products stay as Ploomber leaves them
            outcomes.append(TaskOutcome(name, TaskStatus.STOPPED, notebook=kept))
        elif st == PloomberStatus.Errored:
            outcomes.append(_quarantine(spec, task, errors.get(name)))
        elif st == PloomberStatus.Skipped:
            outcomes.append(TaskOutcome(name, TaskStatus.SKIPPED, notebook=kept))
        else:
            outcomes.append(TaskOutcome(name, TaskStatus.NOT_RUN))
    return outcomes, not raised and all(o.status is not TaskStatus.FAILED for o in outcomes)


def _remotely(remote: Callable[[str], None], name: str) -> Callable[[], None]:
    def run() -> None:
        from ploomber.exceptions import DAGBuildEarlyStop

        try:
            remote(name)
        except RemoteTaskFailed as exc:
            if exc.early_stop:  # the task asked to stop the build gracefully, as it would have here
                raise DAGBuildEarlyStop(str(exc)) from exc
            raise
    return run


def finish_up_to_date(dag: Any) -> str | None:
    """Build a DAG whose tasks are all up to date, as ``ploomber build`` does: nothing runs but its
    ``on_finish`` hook (``on_render`` ran in :func:`open_dag`). The hook's error, one line; None if it passed
    or stopped the build with ``DAGBuildEarlyStop``."""
    from ploomber.exceptions import DAGBuildEarlyStop, DAGBuildError

    try:
        with _rendered_once(dag, force=False):
            dag.build(show_progress=False)
    except DAGBuildEarlyStop:
        return None
    except DAGBuildError as exc:
        return str(exc).strip().splitlines()[0]
    return None


@contextmanager
def _rendered_once(dag: Any, force: bool) -> Iterator[None]:
    """Build without rendering again: :func:`open_dag` rendered the DAG (its ``on_render`` hooks ran then),
    so they run once per build, as under ``ploomber build`` (Ploomber's own render-status cache). With
    ``force`` every task is marked to run by one more render, its ``on_render`` hooks held back."""
    if force:
        hooks = {task: task._on_render for task in dag.values()}
        dag_hook, dag.on_render = dag.on_render, None
        try:
            for task in hooks:
                task._on_render = None
            dag.render(force=True, show_progress=False)
        finally:
            dag.on_render = dag_hook
            for task, hook in hooks.items():
                task._on_render = hook
    cached = dag._params.cache_rendered_status
    dag._params.cache_rendered_status = True
    try:
        yield
    finally:
        dag._params.cache_rendered_status = cached


def forget_metadata(task: TaskSpec) -> None:
    """Delete the up-to-date record of every product of ``task`` (durably: the directory is synced)."""
    dirs = set()
    for product in task.products.values():
        meta = product.with_name(f".{product.name}.metadata")
        if meta.exists():
            meta.unlink(missing_ok=True)
            dirs.add(meta.parent)
    for folder in dirs:
        fsync_dir(folder)


def _forget_before_running(ploomber_task: Any, task: TaskSpec) -> None:
    """Wrap the task's run (whichever executor calls it) so its record goes first."""
    run = ploomber_task._run

    def forget_then_run(*args: Any, **kwargs: Any) -> Any:
        forget_metadata(task)
        return run(*args, **kwargs)

    ploomber_task._run = forget_then_run


def interrupted(dag: Any) -> bool:
    """The last build of ``dag`` was stopped with Ctrl-C."""
    return bool(getattr(dag.executor, "interrupted", 0))


def _build_one(spec: PipelineSpec, dag: Any, name: str) -> tuple[list[TaskOutcome], bool]:
    from ploomber.exceptions import DAGBuildEarlyStop, DAGBuildError

    task = spec.tasks[name]
    for up in task.upstream:
        missing = [p for p in spec.tasks[up].products.values() if not p.exists()]
        if missing:
            raise TaskFailed(name, f"task {name} needs the products of {up}, and "
                                   f"{missing[0].relative_to(spec.root)} is missing: run `mlnb build` or `mlnb pull`")
    ok = True
    forget_metadata(task)  # it runs now (build_partially copies the DAG: a wrapped _run would not be the copy's)
    try:
        dag.build_partially(name, force=True, show_progress=True, skip_upstream=True)
    except (DAGBuildError, DAGBuildEarlyStop) as exc:
        ok = False
        error: BaseException | None = exc
    outcomes = [TaskOutcome(n, TaskStatus.SKIPPED) for n in spec.tasks]
    index = list(spec.tasks).index(name)
    nb_path = _executed_notebook(task)
    outcomes[index] = TaskOutcome(name, TaskStatus.EXECUTED, _duration(nb_path), nb_path) if ok else _quarantine(
        spec, task, error.__cause__ or error)
    return outcomes, ok


def _executed_notebook(task: TaskSpec) -> Path | None:
    """The task's executed notebook, if it keeps one (a function task, or a script rendered only to HTML, does not)."""
    path = task.notebook_product
    return path if path.suffix == ".ipynb" else None


def _duration(nb_path: Path | None) -> float:
    if nb_path is None:
        return 0.0
    try:
        return float(read_notebook(nb_path).get("metadata", {}).get("papermill", {}).get("duration") or 0.0)
    except Exception:
        return 0.0


_RAN_OK = "the task ran successfully but"  # Ploomber: the code ran, a declared product is missing


def _ran_ok(error: BaseException | None) -> bool:
    while error is not None:
        if _RAN_OK in str(error):
            return True
        error = error.__cause__
    return False


def task_failure(spec: PipelineSpec, task: TaskSpec, missing: list[Path],
                 error: BaseException | None) -> CellFailure | None:
    """What failed in a task whose cells all ran (or that has no cells), in Ploomber's words."""
    if missing and (error is None or _ran_ok(error)):
        shown = ", ".join(str(p.relative_to(spec.root)) if p.is_relative_to(spec.root) else str(p) for p in missing)
        return CellFailure(-1, "", "TaskBuildError",
                           f"the task ran successfully but the following products are missing: {shown}", "")
    while error is not None and error.__cause__ is not None and "Error building task" in str(error):
        error = error.__cause__  # Ploomber's wrapper says only which task; the cause says what
    if error is None:
        return None
    return CellFailure(-1, "", type(error).__name__, _reason(error), "")


def partial_notebook_name(task: TaskSpec) -> str:
    """The file name of a failed task's partially executed notebook: its ``.ipynb`` product, or for a task
    rendered to another format (``report.html``) the ``.ipynb`` Ploomber leaves beside it (``report.ipynb``)."""
    nb = task.notebook_product
    return nb.name if nb.suffix == ".ipynb" else nb.with_suffix(".ipynb").name


def _quarantine(spec: PipelineSpec, task: TaskSpec, error: BaseException | None = None) -> TaskOutcome:
    """Move a failed task's products aside and forget its metadata."""
    missing = [p for p in task.products.values() if not p.exists()]
    dest = spec.root / "products" / FAILED_DIR / task.name
    for part in (dest.parent.parent, dest.parent, dest):  # never delete through a link: it may lead anywhere
        if part.is_symlink():
            raise UnsafePathError(f"{part.relative_to(spec.root)} is a symbolic link: mlnb moves failed outputs "
                                  "there and deletes old ones, so it must be a real directory")
    shutil.rmtree(dest, ignore_errors=True)
    kept: list[Path] = []
    failure = None
    for product in task.products.values():
        product.with_name(f".{product.name}.metadata").unlink(missing_ok=True)
        if product.exists():
            dest.mkdir(parents=True, exist_ok=True)
            target = dest / product.name
            shutil.move(str(product), target)
            kept.append(target)
    partial = task.notebook_product.with_name(partial_notebook_name(task))
    if partial.exists() and partial != task.notebook_product and partial.suffix == ".ipynb":
        dest.mkdir(parents=True, exist_ok=True)  # the partial notebook of a render (.html) Ploomber leaves
        shutil.move(str(partial), dest / partial.name)
        kept.append(dest / partial.name)
    nb_kept = dest / partial.name
    duration = 0.0
    if nb_kept.exists():
        try:
            nb = read_notebook(nb_kept)
            failure = find_failure(nb)
            duration = float(nb.get("metadata", {}).get("papermill", {}).get("duration") or 0.0)
        except Exception:
            failure = None
    if failure is None or _ran_ok(error):  # the notebook finished: no cell failed, whatever the last one says
        failure = task_failure(spec, task, missing, error)
    return TaskOutcome(task.name, TaskStatus.FAILED, duration, nb_kept if nb_kept.exists() else None, failure, kept)
