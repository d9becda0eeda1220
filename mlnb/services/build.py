"""``mlnb build``: the pipeline wrapped in one MLflow build run (application layer).

Pure orchestration: returns a :class:`BuildResult`, prints nothing. The build run
gets the git commit, the resolved env snapshot, per-task child runs (status,
duration, executed notebook as an artifact), and the metrics and gate outcome
found in products named ``metrics`` and ``gate``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.adapters.dvc import repo as versioning
from mlnb.adapters.dvc import stages
from mlnb.adapters.mlflow import runs as mlflow_runs
from mlnb.adapters.mlflow import tracking
from mlnb.adapters.ploomber import pipeline, uptodate
from mlnb.core import settings
from mlnb.core.build_events import EventLog, Progress
from mlnb.core.buildlock import build_lock
from mlnb.core.gate import GateResult
from mlnb.core.io import environ
from mlnb.core.notebooks import stamp_run
from mlnb.core.outcomes import TaskStatus
from mlnb.core.project import Project
from mlnb.core.spec import PipelineSpec
from mlnb.errors import MlnbError, SpecError, UserInputError
from mlnb.services import build_record, build_tags, cluster, debug
from mlnb.services.build_tags import gate_verdict, is_gate_failure
from mlnb.services.cluster import ClusterOptions
from mlnb.services.explain import upstream_hashes
from mlnb.services.recorder import FailureRecorder, retire_failures


@dataclass(frozen=True)
class BuildRequest:
    """What to build and how (``mlnb build``'s options; ``only``: exactly that task, ``mlnb run TASK``).

    ``engine="fork"`` runs notebooks on pre-started forked kernels (:mod:`mlnb.engine`), up to
    ``jobs`` independent tasks at a time (default: the number of cores); ``"papermill"`` is stock
    Ploomber + papermill, one task at a time. Under the fork engine a failing task leaves a namespace
    snapshot (at most ``snapshot_mb``) for ``mlnb debug``, and ``resume`` restarts a failed task at its
    failing cell when that is safe (:mod:`mlnb.services.debug`)."""

    force: bool = False
    only: str | None = None
    record: bool = True  # record the outputs in DVC afterwards (a DVC project)
    engine: str = "fork"
    jobs: int | None = None
    resume: bool = False
    snapshot_mb: float = 512
    cluster: ClusterOptions | None = None  # run the tasks on a Dask cluster (:mod:`mlnb.services.cluster`)


@dataclass(frozen=True)
class _Build:
    """One build under way: the project, the request, and what was decided before the tasks ran."""

    project: Project
    request: BuildRequest
    jobs: int
    progress: Progress | None
    dvc_repo: bool  # record the outputs in dvc.lock afterwards
    synced: bool  # dvc.yaml was regenerated first
    start: float


@dataclass
class BuildResult:
    ran: bool
    ok: bool
    outcomes: list[pipeline.TaskOutcome] = field(default_factory=list)
    run_id: str | None = None
    metrics: dict[str, float] | None = None
    gate: GateResult | None = None
    artifact: Path | None = None
    elapsed: float = 0.0
    recorded: list[str] = field(default_factory=list)  # stages recorded in dvc.lock by this build
    synced: bool = False  # dvc.yaml was regenerated from pipeline.yaml first
    record_note: str | None = None  # why outputs were deliberately not recorded in DVC
    record_error: str | None = None  # DVC failed to record them
    interrupted: bool = False  # stopped with Ctrl-C
    resume_notes: list[str] = field(default_factory=list)  # how --resume ran each failed task
    warnings: list[str] = field(default_factory=list)  # what Ploomber warns about in the spec (one line each)
    hook_error: str | None = None  # the DAG's on_finish hook failed (Ploomber: the build failed)

    @property
    def failed(self) -> list[pipeline.TaskOutcome]:
        return [o for o in self.outcomes if o.status is TaskStatus.FAILED]


def _product(spec: PipelineSpec, key: str, ran: set[str]) -> Path | None:
    """The path of the product named ``key`` (or its quarantined copy after a failure), if this
    build ran the task that makes it (an older file would misdescribe the build)."""
    for task in spec.tasks.values():
        if key in task.products:
            if task.name not in ran:
                return None
            path = task.products[key]
            failed = spec.root / "products" / pipeline.FAILED_DIR / task.name / path.name
            return path if path.exists() else failed if failed.exists() else None
    return None


def _model_run(spec: PipelineSpec, outcomes: list[pipeline.TaskOutcome]) -> str | None:
    """The MLflow run id in the product named ``run`` (the training task's), when that task is
    executed or up to date in this build (its model is the one the build evaluated)."""
    usable = {o.name for o in outcomes if o.status.current}
    for task in spec.tasks.values():
        path = task.products.get("run")
        if path is not None and task.name in usable and path.exists():
            try:
                run_id = json.loads(path.read_text()).get("run_id")
            except (ValueError, AttributeError):
                return None
            return run_id if isinstance(run_id, str) else None
    return None


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def run_build(project: Project, request: BuildRequest | None = None,
              progress: Progress | None = None) -> BuildResult:
    """:func:`_run_build` under the project's build lock (one build at a time: a second one raises
    :class:`~mlnb.errors.BuildRunning`), telling :mod:`mlnb.core.build_events` how it goes."""
    request = request or BuildRequest()
    with build_lock(project.root):
        if request.only is not None:  # `mlnb run TASK` (a dvc repro stage) is not a build of the pipeline
            return _run_build(project, request, progress)
        events = EventLog(project.root)
        events.start(force=request.force, resume=request.resume, engine=request.engine,
                     params=list(project.overrides))
        both = _tee(progress, events.progress) if request.engine == "fork" else progress
        try:
            result = _run_build(project, request, both, events.cell)
        except BaseException as exc:
            events.close(ok=False, interrupted=isinstance(exc, KeyboardInterrupt), run_id=None, tasks={},
                         failures={}, error=str(exc) if isinstance(exc, MlnbError) else type(exc).__name__)
            raise
        events.close(ok=result.ok, interrupted=result.interrupted, run_id=result.run_id, ran=result.ran,
                     tasks={o.name: o.status.value for o in result.outcomes},
                     failures={o.name: o.failure.describe() for o in result.failed if o.failure}, error=None)
        return result


def check_request(request: BuildRequest) -> None:
    """Refuse options that do not go together, in one line (before anything is written)."""
    if request.resume and request.engine != "fork":
        raise UserInputError("--resume: needs the fork engine (failure snapshots are taken in its kernels)")
    if request.cluster is not None and (request.engine != "fork" or request.only):
        what = "--engine papermill" if request.engine != "fork" else "mlnb run"
        raise UserInputError(f"--executor dask: not with {what} (workers run the fork engine, one whole build)")


def _tee(first: Progress | None, second: Progress) -> Progress:
    def both(event: str, task: str, seconds: float) -> None:
        second(event, task, seconds)
        if first is not None:
            first(event, task, seconds)
    return both


def _run_build(project: Project, request: BuildRequest, progress: Progress | None,
               cells: Callable[[str, int, int], None] | None = None) -> BuildResult:
    """Build what is outdated (everything with ``force``; exactly task ``only`` when given) under
    one MLflow build run, reporting to ``progress``, then record the outputs in DVC (``dvc commit``)
    when the project uses it."""
    start = time.perf_counter()
    check_request(request)
    result = _checked_build(project, request, progress, cells, start)
    result.warnings = list(project.spec.warnings)
    return result


def _checked_build(project: Project, request: BuildRequest, progress: Progress | None,
                   cells: Callable[[str, int, int], None] | None, start: float) -> BuildResult:
    spec, force, only, engine = project.spec, request.force, request.only, request.engine
    if only is not None and only not in spec.tasks:
        raise SpecError(f"pipeline.yaml: no task named {only!r} (tasks: {', '.join(spec.tasks)})")
    dvc_repo = request.record and only is None and versioning.is_dvc_repo(project.root)
    synced = False
    if dvc_repo and spec.root == project.root:  # dvc.yaml is generated: keep it current
        base = project.committed.spec  # dvc.yaml describes params.yaml
        versioning.require_params_linked(base)
        synced = versioning.sync(base).changed
        if not force:
            invalidate_changed_modules(spec)
    job = _Build(project, request, request.jobs or os.cpu_count() or 1, progress, dvc_repo, synced, start)
    if only is None and not force and not spec.hooks and uptodate.all_up_to_date(spec):  # without Ploomber
        return _nothing_to_do(job)
    if request.cluster is not None:
        return _cluster_build(job, request.cluster)
    server = _start_engine(spec, engine, 1 if only else job.jobs)
    try:
        dag = pipeline.open_dag(spec, project.env, engine)
        if only is None and not force and not any(s.outdated for s in pipeline.status(spec, dag)):
            # the DAG's on_finish hook still runs, as under `ploomber build` (on_render ran in open_dag)
            return _nothing_to_do(job, pipeline.finish_up_to_date(dag) if spec.hooks else None)
        recorder = FailureRecorder(spec, request.resume, request.snapshot_mb) \
            if engine == "fork" and only is None else None
        options = _task_options(recorder, cells if engine == "fork" else None)
        return _tracked_build(job, dag=dag, server=server, recorder=recorder, task_options=options)
    finally:
        if server is not None:
            server.stop()


def _cluster_build(job: _Build, options: ClusterOptions) -> BuildResult:
    """The tasks' code on a Dask cluster, everything else here (:mod:`mlnb.services.cluster`)."""
    project, spec = job.project, job.project.spec
    cluster.check(project, options)  # before the DAG is even loaded
    dag = pipeline.open_dag(spec, project.env, "papermill")  # nothing runs here: no local kernels
    if not job.request.force and not any(s.outdated for s in pipeline.status(spec, dag)):
        return _nothing_to_do(job, pipeline.finish_up_to_date(dag) if spec.hooks else None)
    recorder = FailureRecorder(spec, job.request.resume, job.request.snapshot_mb)  # snapshots come back
    with cluster.session(project, options, recorder) as remote:
        jobs = job.request.jobs or remote.slots
        return _tracked_build(dataclasses.replace(job, jobs=jobs, progress=job.progress or _silent), dag=dag,
                              server=None, recorder=recorder, remote=remote)


def _silent(event: str, task: str, seconds: float) -> None:
    """Progress nobody reads (the cluster build always runs on mlnb's executor, which reports some)."""


def _task_options(recorder: Any, cells: Callable[[str, int, int], None] | None) -> Any:
    """Each task's kernel options in its worker thread: the failure recorder's, and cell progress."""
    if cells is None:
        return recorder.options if recorder is not None else None
    from mlnb.engine import kernel

    @contextmanager
    def options(name: str) -> Iterator[None]:
        with ExitStack() as stack:
            if recorder is not None:
                stack.enter_context(recorder.options(name))
            stack.enter_context(kernel.cell_events(lambda k, n: cells(name, k, n)))
            yield
    return options


def _start_engine(spec: PipelineSpec, engine: str, pool: int) -> Any:
    """The fork server (started now, so it imports while Ploomber loads), or None."""
    if engine not in pipeline.ENGINES:
        raise UserInputError(f"--engine: unknown engine {engine!r} (choose from {', '.join(pipeline.ENGINES)})")
    if engine != "fork":
        return None
    from mlnb.engine.imports import notebook_imports
    from mlnb.engine.kernel import ForkServer

    modules = [*notebook_imports([t.source for t in spec.tasks.values()], spec.root),
               "cloudpickle", "mlnb.engine.checkpoint"]  # what failure snapshots use in every kernel
    return ForkServer(modules, pool, spec.root).start()


def _nothing_to_do(job: _Build, hook_error: str | None = None) -> BuildResult:
    spec = job.project.spec
    skipped = [pipeline.TaskOutcome(n, TaskStatus.SKIPPED) for n in spec.tasks]
    result = BuildResult(False, hook_error is None, skipped, synced=job.synced, hook_error=hook_error)
    if job.dvc_repo:
        _record(job.project, result, up_to_date=None)
    result.elapsed = time.perf_counter() - job.start
    root = job.project.root  # the project's, as a build that ran writes it (not the spec's folder)
    if not (root / "products" / "last_build.json").exists():  # e.g. outputs pulled from DVC: report them
        build_record.write_last_build(root, result)
    return result


def _tracked_build(job: _Build, *, dag: Any, server: Any, recorder: Any, task_options: Any = None,
                   remote: cluster.Session | None = None) -> BuildResult:
    project, spec, env, root = job.project, job.project.spec, job.project.env, job.project.root
    force, only, engine = job.request.force, job.request.only, job.request.engine
    experiment_id = tracking.configure(root, project.experiment)
    tracking.close_orphaned_builds(experiment_id, root)  # we hold the build lock: a RUNNING one here is dead
    source = settings.get("MLNB_SWEEP_SOURCE") or root  # a sweep point: the project its sources came from
    commit = tracking.git_commit(source)
    tags = {"mlnb.kind": "build", "mlnb.git_commit": commit, "mlnb.force": str(force).lower(), "mlnb.engine": engine,
            **build_tags.tree_tags(Path(source)), **tracking.owner_tags(root)}
    if sweep := settings.get("MLNB_SWEEP_RUN_ID"):  # a point of `mlnb sweep`: under its run
        tags.update({"mlflow.parentRunId": sweep, "mlnb.sweep_run": sweep})
    if only is not None:
        tags["mlnb.only"] = only
    if remote is not None:
        tags.update({"mlnb.executor": "dask", "mlnb.dask.scheduler": remote.cluster.address,
                     "mlnb.dask.shared_fs": str(remote.store is None).lower()})
    env_path = project.env_path
    if source != root and env_path.resolve().is_relative_to(root.resolve()):  # the same file in the source project
        env_path = Path(source) / env_path.resolve().relative_to(root.resolve())
    name = tracking.build_run_name(commit, tracking.changed_params(Path(source), env_path, env),
                                   project.env_file and env_path.name)
    with mlflow_runs.start_run(name, tags) as run:
        run_id = run.run_id
        run.log_params({k: str(v)[:500] for k, v in _flatten(env).items()})
        run.log_dict(env, "env.yaml")
        with environ(**{tracking.BUILD_RUN_ENV: run_id, "MLFLOW_TRACKING_URI": tracking.tracking_uri(root)}):
            outcomes, ok = pipeline.build(spec, dag, force=force, only=only, jobs=job.jobs,
                                          progress=job.progress if engine == "fork" else None,
                                          interrupt=remote.interrupt if remote is not None else
                                          server.interrupt if server is not None else None,
                                          task_options=task_options, remote=remote)
        notes = recorder.after(outcomes, run_id) if recorder is not None else []
        client = mlflow_runs.client()
        existing = tracking.task_runs(run_id, run.experiment_id)
        hashes: dict[str, Any] = {}  # each upstream product hashed once, however many tasks read it
        for outcome in outcomes:
            if (outcome.status is TaskStatus.EXECUTED and outcome.notebook and outcome.notebook.suffix == ".ipynb"
                    and outcome.notebook.exists()):
                stamp_run(outcome.notebook, run_id, outcome.name,
                          upstream_hashes(spec, spec.tasks[outcome.name], hashes))
            if outcome.status.ran:
                placed = remote.placed(outcome.name) if remote is not None else None
                build_record.record_task(client, run_id, run.experiment_id, outcome, existing, placed)
        result = BuildResult(True, ok, outcomes, run_id, synced=job.synced, interrupted=pipeline.interrupted(dag),
                             resume_notes=notes)
        ran = {o.name for o in outcomes if o.status.ran}
        metrics_path, gate_path = _product(spec, "metrics", ran), _product(spec, "gate", ran)
        if metrics_path:
            result.metrics = json.loads(metrics_path.read_text())
            run.log_metrics({k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)})
        if gate_path:
            result.gate, gate_tags = gate_verdict(Path(source), env, GateResult.from_dict(
                json.loads(gate_path.read_text()), str(gate_path.relative_to(root))))
            run.set_tags(gate_tags)
            run.log_dict(result.gate.to_dict(), "gate.json")
        model_run = _model_run(spec, outcomes)
        if model_run:  # the training run whose model this build evaluated (a forced promotion registers it)
            run.set_tag("mlnb.train_run_id", model_run)
        artifact = next((p for t in spec.tasks.values() for p in t.products.values()
                         if (p / "MLmodel").is_file()), None)
        if ok and artifact:
            result.artifact = artifact
            run.set_tag("mlnb.artifact", str(artifact.relative_to(root)))
        run.log_dict(build_record.task_rows(outcomes), "tasks.json")
        run.set_tag("mlnb.status", "ok" if ok else "failed")
        if not ok:
            run.set_tag("mlnb.failed_task", ",".join(o.name for o in result.failed))
            # a failed gate is a verdict (tag mlnb.gate.verdict), not a crash to debug
            first = next((o for o in result.failed if o.failure and not is_gate_failure(o)), None)
            if first is not None:  # the Runs panel shows it, with a Debug button while it can be debugged
                run.set_tags({"mlnb.failure": first.failure.describe()[:5000],  # type: ignore[union-attr]
                                 "mlnb.failure_task": first.name,
                                 debug.DEBUGGABLE_TAG: str(recorder is not None and debug.can_debug(root, first.name)
                                                           ).lower()})
    if not ok:
        client.set_terminated(run_id, status="KILLED" if result.interrupted else "FAILED")
    if recorder is not None:  # older builds whose failure this build's run of the task replaced
        retire_failures(client, recorder, run_id)
    if job.dvc_repo:
        current = [o.name for o in outcomes if o.status.current]
        _record(project, result, up_to_date=current)
        build_tags.record_dvc_on_run(client, run_id, spec, result)
    result.elapsed = time.perf_counter() - job.start
    if only is None:  # `mlnb run TASK` (a dvc repro stage) is not a build of the pipeline
        build_record.write_last_build(root, result)
    return result


def _record(project: Project, result: BuildResult, up_to_date: list[str] | None) -> None:
    """``dvc commit`` the outputs of the ``up_to_date`` tasks (None: those whose dvc.lock entry is
    stale); a DVC failure is reported on the result, not raised (the build ran)."""
    if project.overridden:
        result.record_note = ("not recorded in DVC: built with --env-file/-p overrides, which dvc.lock "
                              "(keyed on env.yaml) would misdescribe")
        return
    if project.spec.root != project.root:
        result.record_note = (f"not recorded in DVC: {project.spec.path.name}'s products resolve against "
                              f"{project.spec.root.relative_to(project.root)}/ (as Ploomber resolves them), not the "
                              "project root; DVC stages for such a spec are not supported yet")
        return
    try:
        result.recorded = versioning.commit(project.spec, up_to_date=up_to_date)
    except MlnbError as exc:
        result.record_error = f"outputs not recorded in DVC: {exc}"


def invalidate_changed_modules(spec: PipelineSpec) -> dict[str, list[str]]:
    """Make tasks whose imported project modules changed since ``dvc.lock`` outdated for Ploomber too
    (which only watches the notebook): their products' metadata goes, so the next build re-runs them."""
    changed = versioning.changed_modules(spec)
    for name in changed:
        for product in spec.tasks[name].products.values():
            stages.metadata_path(product).unlink(missing_ok=True)
    return changed
