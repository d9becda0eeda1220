"""One task run away from its build: on a Dask worker (``mlnb build --executor dask``) or in an orchestrator's
step (``mlnb run TASK --exchange``, what ``mlnb export argo|kubeflow`` writes).

Without a shared filesystem the task runs in a copy of the project's sources (an archive the build puts in
the DVC remote, fetched by hash and unpacked once per worker and sources digest) and gets what it reads through
the DVC remote, by content hash (:mod:`mlnb.adapters.dvc.exchange`): the upstream products it needs and the
project's DVC-tracked data. It runs on the fork engine as in a local build (a fork server per sources digest is
kept warm in the worker), then sends its products back the same way (and any file it wrote beside them, such
as a model's ``.sha256`` sidecar, which a downstream task may read) and answers with their manifest. A failed
task sends back what it left (its partial notebook, any products) so the build quarantines it as it would a
local failure. With a shared filesystem (``--shared-fs``) the task runs in the project itself and nothing is
exchanged.

A worker process runs one task at a time (papermill and the fork server's settings are process-wide), whatever
its number of threads. The answer is a plain dict (:class:`RemoteResult` fields), so nothing of mlnb's
classes has to travel back.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import tarfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlnb.adapters.dvc import exchange
from mlnb.adapters.ploomber import pipeline, single
from mlnb.core.io import environ
from mlnb.core.project import Project, load_project
from mlnb.errors import ClusterError, MlnbError, UserInputError

_ONE_AT_A_TIME = threading.Lock()
_SERVERS: dict[str, Any] = {}  # sources digest -> its warm fork server (one per worker process)
_STORES: dict[str, exchange.Store] = {}
_READY: dict[tuple[Any, ...], tuple[Project, Any | None]] = {}  # (digest, env file, -p, entry point) -> project, DAG
_PASSED_ENV = ("MLFLOW_TRACKING_URI", "MLNB_BUILD_RUN_ID", "MLFLOW_EXPERIMENT_NAME")


@dataclass(frozen=True)
class TaskRequest:
    """What a worker needs to run one task of a build."""

    task: str
    version: str  # the build's mlnb version: a worker with another one refuses
    env_file: str | None = None  # relative to the project
    overrides: tuple[str, ...] = ()
    entry_point: str | None = None
    remote: str | None = None  # the DVC remote's URL; None: a shared filesystem (``root``)
    root: str | None = None  # the project's path, on a shared filesystem
    digest: str | None = None  # of the sources (the folder a worker unpacks them in)
    bundle: str | None = None  # the md5 of their archive, an object in the remote
    inputs: dict[str, str] = field(default_factory=dict)  # manifest: upstream products and DVC-tracked data
    environ: dict[str, str] = field(default_factory=dict)  # MLflow's server, the build run
    snapshot_mb: float | None = None  # take a failure snapshot (at most this size); None: none
    resume: dict[str, Any] | None = None  # resume at a cell: cell_id, cell_index, partial (notebook), count
    snapshot: dict[str, str] = field(default_factory=dict)  # manifest of the snapshot to resume from


@dataclass
class RemoteResult:
    task: str
    ok: bool
    products: dict[str, str]  # manifest of what was sent back (nothing on a shared filesystem)
    failure: str | None = None
    early_stop: bool = False
    elapsed: float = 0.0
    worker: str = ""
    phases: dict[str, float] = field(default_factory=dict)  # seconds: fetch, render, run, push
    snapshot: dict[str, str] = field(default_factory=dict)  # a failed task's snapshot, as sent back


def run_bundle(work: Path, request: TaskRequest) -> dict[str, Any]:
    """On a worker: unpack the sources (once per digest) in ``work``, run the task there, exchange through the
    remote. The dict form of :class:`RemoteResult`; mlnb's own errors (a spec, the version) are answered, not
    raised, since running again would not help (Dask retries what raises: a lost connection, a full disk)."""
    try:
        return _run_bundle(work, request)
    except MlnbError as exc:
        return asdict(RemoteResult(request.task, False, {}, str(exc), worker=_where()))


def _run_bundle(work: Path, request: TaskRequest) -> dict[str, Any]:
    _check_version(request.version)
    with _ONE_AT_A_TIME:
        assert request.remote is not None
        store = _store(request.remote)
        project = _ready(work, request, store)[0]
        kernel = Kernel(request.snapshot_mb, request.resume, request.snapshot)
        result = run_exchanged(project, request.task, store, request.inputs, work / "objects",
                               request.environ, server_key=request.digest, kernel=kernel)
        return asdict(result)


def warm(work: Path, request: TaskRequest) -> None:
    """Before the build's first task reaches this worker: unpack the sources, start the fork server, load
    Ploomber (seconds on a worker's first build, paid while the first tasks run elsewhere)."""
    try:
        _check_version(request.version)
        with _ONE_AT_A_TIME:
            assert request.remote is not None
            project = _ready(work, request, _store(request.remote))[0]
            with contextlib.chdir(project.root):
                _fork_server(project, request.digest)
            single.preload()  # the DAG itself is rendered by the first task, once its inputs are fetched
    except MlnbError:  # the task that needs it will say it
        pass


def run_shared(request: TaskRequest) -> dict[str, Any]:
    """On a worker that mounts the project at ``request.root``: run the task in place."""
    try:
        return _run_shared(request)
    except MlnbError as exc:
        return asdict(RemoteResult(request.task, False, {}, str(exc), worker=_where()))


def _run_shared(request: TaskRequest) -> dict[str, Any]:
    _check_version(request.version)
    with _ONE_AT_A_TIME:
        assert request.root is not None
        root = Path(request.root)
        if not root.is_dir():
            raise ClusterError(f"--shared-fs: {root} is not a directory on worker {socket.gethostname()}")
        project = load_project(root, request.env_file, request.overrides, request.entry_point, _factory_loader())
        kernel = Kernel(request.snapshot_mb, request.resume)  # the snapshot is in place
        return asdict(_run(project, request.task, request.environ, f"shared:{root}", kernel))


@dataclass(frozen=True)
class Kernel:
    """The failure snapshot options of a task run elsewhere (what :class:`~mlnb.services.recorder.FailureRecorder`
    gives a local kernel): snapshot on failure (at most ``snapshot_mb``), resume from ``snapshot``."""

    snapshot_mb: float | None = None
    resume: dict[str, Any] | None = None
    snapshot: dict[str, str] = field(default_factory=dict)

    def options(self, spec: Any, name: str) -> contextlib.AbstractContextManager[None]:
        if self.snapshot_mb is None:
            return contextlib.nullcontext()
        from mlnb.engine import checkpoint, kernel
        from mlnb.services import debug

        env = debug.kernel_env(spec, name, self.snapshot_mb)
        if self.resume is None:
            return kernel.task_options(env)
        env[checkpoint.RESUME_ENV] = env[checkpoint.ENV]
        env[checkpoint.COUNT_ENV] = str(self.resume["count"])
        return kernel.task_options(env, {k: self.resume[k] for k in ("cell_id", "cell_index", "partial")})


def run_exchanged(project: Project, name: str, store: exchange.Store, inputs: dict[str, str], cache: Path | None,
                  env: dict[str, str], server_key: str | None = None, kernel: Kernel | None = None) -> RemoteResult:
    """Fetch ``inputs``, run task ``name`` in ``project``, push what it left; the manifest in the result (and a
    failure snapshot's, when ``kernel`` asks for one)."""
    spec = project.spec
    if name not in spec.tasks:
        raise UserInputError(f"{spec.path.name}: no task named {name!r} (tasks: {', '.join(spec.tasks)})")
    kernel = kernel or Kernel()
    snapshots = _snapshot_dir(project, name)
    shutil.rmtree(snapshots, ignore_errors=True)  # an earlier task run's here: not this one's
    t0 = time.perf_counter()
    exchange.fetch(store, project.root, inputs, cache)
    if kernel.resume is not None:
        exchange.fetch(store, snapshots, kernel.snapshot, cache)
    fetched = time.perf_counter() - t0
    started = time.time()
    result = _run(project, name, env, server_key, kernel)
    task = spec.tasks[name]
    left = [*task.products.values(), task.notebook_product.with_name(pipeline.partial_notebook_name(task)),
            *_written_beside(task.products.values(), started, project.root)]
    t0 = time.perf_counter()
    result.products = exchange.push(store, project.root, [p for p in dict.fromkeys(left) if p.exists()])
    if not result.ok and kernel.snapshot_mb is not None and snapshots.is_dir():
        result.snapshot = exchange.push(store, snapshots, sorted(p for p in snapshots.iterdir() if p.is_file()))
    result.phases.update(fetch=round(fetched, 3), push=round(time.perf_counter() - t0, 3))
    return result


def _snapshot_dir(project: Project, name: str) -> Path:
    from mlnb.services.debug import snapshot_dir

    return snapshot_dir(project.spec.root, name)


def run_step(project: Project, name: str, upstream: list[str], remote: str) -> RemoteResult:
    """``mlnb run TASK --exchange``: one step of an orchestrator's workflow (Argo, Kubeflow) in the project image.
    ``upstream``: the manifests (JSON) the upstream steps wrote; the DVC-tracked data comes from the ``*.dvc``
    files' hashes. MLflow's server and the build run come from this process's environment."""
    import json

    from mlnb.adapters.dvc.objects import dvc_files, needed_by

    store = exchange.open_store(remote)
    inputs: dict[str, str] = {}
    for text in upstream:
        try:
            given = json.loads(text)
            inputs.update({str(k): str(v) for k, v in given["products"].items()})
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserInputError(f"--upstream {text[:60]!r}: not a products manifest (what `mlnb run "
                                 "--exchange --products-out` writes)") from None
    root = project.root
    entries = [(e.path, e.md5) for f in dvc_files(root) for e in needed_by(f, root)]
    inputs = {**exchange.tracked(store, root, entries), **inputs}
    try:
        return run_exchanged(project, name, store, inputs, None, dict(os.environ))
    finally:
        stop_servers()


def stop_servers() -> None:
    """Stop this process's fork servers (a one-task process, on its way out)."""
    for server in _SERVERS.values():
        server.stop()
    _SERVERS.clear()


def _written_beside(products: Any, since: float, root: Path) -> list[Path]:
    """Files the task wrote next to its products without declaring them (a model's ``.sha256`` sidecar, say):
    a downstream task may read them, as it would beside a local build's products."""
    found = []
    for folder in {p.parent for p in products if p.parent != root and p.parent.is_dir()}:
        for path in folder.iterdir():
            if (path.is_file() and not path.name.startswith(".") and not path.is_symlink()
                    and path.stat().st_mtime >= since - 1):
                found.append(path)
    return sorted(found)


def _run(project: Project, name: str, env: dict[str, str], server_key: str | None,
         kernel: Kernel | None = None) -> RemoteResult:
    start = time.perf_counter()
    spec = project.spec
    with environ(**{k: v for k, v in env.items() if k in _PASSED_ENV}), contextlib.chdir(project.root):
        # in the project, as a local build's kernels are (they find it, and read relative paths, from there)
        _fork_server(project, server_key)
        t0 = time.perf_counter()
        key = next((k for k, (p, _) in _READY.items() if p is project), None)
        dag = _READY[key][1] if key is not None else None  # rendered once per build configuration
        if dag is None:
            dag = pipeline.open_dag(spec, project.env, "fork")
            if key is not None:
                _READY[key] = (project, dag)
        t1 = time.perf_counter()
        with (kernel or Kernel()).options(spec, name):
            error = single.run_task(spec, dag, name)
        phases = {"render": round(t1 - t0, 3), "run": round(time.perf_counter() - t1, 3)}
    failure = None
    if error is not None:
        task = spec.tasks[name]
        missing = [p for p in task.products.values() if not p.exists()]
        described = pipeline.task_failure(spec, task, missing, error)
        failure = described.describe() if described else f"{type(error).__name__}: {error}"
    return RemoteResult(name, error is None, {}, failure, _early_stop(error), time.perf_counter() - start, _where(),
                        phases)


def _where() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _fork_server(project: Project, key: str | None) -> None:
    """Start (once per ``key``) the fork server this worker's tasks of the project run on."""
    from mlnb.engine.imports import notebook_imports
    from mlnb.engine.kernel import ForkServer

    key = key or str(project.root)
    server = _SERVERS.get(key)
    if server is not None and server.proc is not None and server.proc.poll() is None:
        return  # its settings stay in this process's environment (ForkServer.start)
    for old in _SERVERS.values():  # another project (or another version of it): one server per worker
        old.stop()
    _SERVERS.clear()
    spec = project.spec
    modules = [*notebook_imports([t.source for t in spec.tasks.values()], spec.root), "cloudpickle",
               "mlnb.engine.checkpoint"]
    _SERVERS[key] = ForkServer(modules, 1, spec.root).start()


def stop_running() -> None:
    """Kill the kernel of the task this worker runs (the build cancelled it: Ctrl-C)."""
    for server in list(_SERVERS.values()):
        try:
            server.interrupt(hard=True)
        except Exception:  # the server is gone already
            pass


def _early_stop(error: BaseException | None) -> bool:
    while error is not None:
        if type(error).__name__ == "DAGBuildEarlyStop":
            return True
        error = error.__cause__
    return False


def _check_version(expected: str) -> None:
    from importlib import metadata

    here = metadata.version("mlnb")
    if here != expected:
        raise ClusterError(f"worker {socket.gethostname()} has mlnb {here}, the build {expected}: install the same "
                           "version on the workers (the project's image)")


def _factory_loader() -> Any:
    from mlnb.adapters.ploomber.factory import spec_from_factory

    return spec_from_factory


def _store(url: str) -> exchange.Store:
    """The remote at ``url``, opened once per worker process."""
    if url not in _STORES:
        _STORES[url] = exchange.open_store(url)
    return _STORES[url]


def _ready(work: Path, request: TaskRequest, store: exchange.Store) -> tuple[Project, Any]:
    """The project of ``request`` unpacked and loaded once per worker process; its DAG is rendered by the first
    task and kept (a build's tasks render the same DAG: Ploomber's partial build copies it, so it is reused)."""
    key = (request.digest, request.env_file, request.overrides, request.entry_point)
    if key not in _READY:
        root = _unpacked(work, request, store)
        project = load_project(root, request.env_file, request.overrides, request.entry_point, _factory_loader())
        if len(_READY) >= 8:  # other builds' configurations: keep a few
            _READY.pop(next(iter(_READY)))
        _READY[key] = (project, None)  # rendered by the first task (its resources fetched first)
    return _READY[key]


def _unpacked(work: Path, request: TaskRequest, store: exchange.Store) -> Path:
    """The build's sources unpacked under ``work`` (fetched from the remote and unpacked once per digest: later
    tasks reuse the tree, and their own products are removed before each runs)."""
    assert request.digest is not None and request.bundle is not None
    root = work / "projects" / request.digest  # not "src/...": Ploomber takes a folder in src/ for a package's
    if root.is_dir():
        return root
    tmp = work / "projects" / f".{request.digest}.{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    bundle = exchange.fetch_bytes(store, request.bundle, work)
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        tar.extractall(tmp, filter="data")  # no links out, no absolute paths, no devices
    try:
        os.rename(tmp, root)
    except OSError:  # another process of this worker unpacked it first
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def describe(exc: BaseException) -> str:
    """One line for an error raised on a worker."""
    return str(exc) if isinstance(exc, MlnbError) else f"{type(exc).__name__}: {exc}"
