"""``mlnb build --executor dask``: the build's tasks run on Dask workers, the rest of the build stays here.

The build (this process) keeps the DAG, the progress lines, MLflow's build and child runs, quarantine and the
DVC record, exactly as for a local build; only each task's code runs on a worker
(:mod:`mlnb.services.remote_task`). By default the workers share nothing with this machine: they get the
project's sources once (:mod:`mlnb.services.bundle`) and, per task, the upstream products and DVC-tracked
data it reads through the project's DVC remote, by content hash; they push the task's products back the
same way and this process fetches them into the project. ``--shared-fs`` is for a cluster that mounts the
project at the same path: tasks run in place, nothing is exchanged.

Refused before anything runs, in one line: MLflow's embedded SQLite store without a shared filesystem (the
workers could not reach it: set ``MLFLOW_TRACKING_URI`` to a tracking server), no DVC remote without a shared
filesystem, a scheduler with no workers, workers without this version of mlnb.

Failure snapshots and ``--resume`` work as in a local build: a failed task's snapshot comes back with its
partial notebook (``mlnb debug`` opens it here), and a resumed task gets it with its inputs.

Ctrl-C: the tasks not started are not started, the running ones are cancelled (their results are dropped; on
a local cluster a second Ctrl-C restarts the workers, which kills their kernels).
"""

from __future__ import annotations

import functools
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mlnb.adapters.dask import cluster as dask_cluster
from mlnb.adapters.dvc import exchange
from mlnb.adapters.dvc import repo as versioning
from mlnb.adapters.mlflow import tracking
from mlnb.core import settings
from mlnb.core.project import Project
from mlnb.errors import ClusterError, RemoteTaskFailed, TaskFailed, UserInputError
from mlnb.services import bundle as bundles
from mlnb.services import remote_task
from mlnb.services.debug import MANIFEST, snapshot_dir
from mlnb.services.recorder import FailureRecorder
from mlnb.services.remote_task import TaskRequest

EXECUTORS = ("local", "dask")
_PASSED = ("MLFLOW_TRACKING_URI", "MLNB_BUILD_RUN_ID")


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how: ``scheduler`` (``tcp://HOST:PORT``; None: ``MLNB_DASK_SCHEDULER``, else a local cluster of
    ``workers`` processes), ``shared_fs`` (workers mount the project at the same path), ``retries``."""

    scheduler: str | None = None
    workers: int | None = None
    shared_fs: bool = False
    retries: int | None = None


def check(project: Project, options: ClusterOptions) -> str | None:
    """Refuse what cannot work, before anything starts; the remote's URL (None on a shared filesystem)."""
    uri = tracking.tracking_uri(project.root)
    if options.shared_fs:
        return None
    if uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri:
        raise UserInputError(f"--executor dask: MLflow's store is {uri}, which workers on other machines cannot "
                             "reach: set MLFLOW_TRACKING_URI to a tracking server (`mlflow server`), or pass "
                             "--shared-fs if every worker mounts this project at the same path")
    url = remote_url(project)
    if not url:
        raise UserInputError("--executor dask: workers exchange products through the project's DVC remote, and "
                             f"none is set: run `mlnb remote set PATH_OR_URL` or set {versioning.REMOTE_ENV} "
                             "(or pass --shared-fs)")
    return url


def remote_url(project: Project) -> str | None:
    """The DVC remote products are exchanged through: ``MLNB_DVC_REMOTE`` (a path is made absolute), else the
    project's default remote; None when there is neither."""
    raw = settings.get(versioning.REMOTE_ENV)
    if raw:
        return str((Path.cwd() / Path(raw).expanduser()).resolve()) if "://" not in raw else raw
    if versioning.is_dvc_repo(project.root):
        rem = versioning.remote(project.root)
        return rem.url if rem is not None else None
    return None


class Session:
    """A build's use of the cluster: the ``remote`` callable :func:`mlnb.adapters.ploomber.pipeline.build`
    calls (from its worker threads) for each task, and its Ctrl-C handler."""

    def __init__(self, project: Project, options: ClusterOptions, remote_url: str | None,
                 cluster: dask_cluster.Cluster, recorder: FailureRecorder | None = None) -> None:
        self.project, self.options, self.cluster, self.recorder = project, options, cluster, recorder
        self.root = project.root.resolve()
        self.retries = options.retries if options.retries is not None else settings.get("MLNB_DASK_RETRIES")
        self.store = exchange.open_store(remote_url) if remote_url else None
        self.version = metadata.version("mlnb")
        self._lock = threading.Lock()
        self._hashes: dict[Path, str] = {}
        self._sent: dict[str, dict[str, str]] = {}  # task -> manifest of its products, as a worker sent them
        self._futures: dict[str, Any] = {}
        self.interrupted = 0
        self._bundle: str | None = None  # md5 of the sources' archive in the remote
        self._warm: list[Any] = []  # kept: a released future is a cancelled task
        self._load: dict[str, float] = {}  # worker -> tasks of this build on it (running or queued; a warm-up 0.5)
        self._digest: str | None = None
        self._data: dict[str, str] = {}
        self.worker_of: dict[str, str] = {}
        self.phases: dict[str, dict[str, float]] = {}  # task -> seconds on its worker (fetch, render, run, push)

    def prepare(self) -> None:
        """Check the workers, send the sources, push the DVC-tracked data (once per build)."""
        dask_cluster.wait_for_workers(self.cluster)
        versions = dask_cluster.worker_versions(self.cluster)
        wrong = {addr: v for addr, v in versions.items() if v != self.version}
        if wrong:
            addr, got = next(iter(wrong.items()))
            said = "does not have mlnb installed" if got is None else f"has mlnb {got}, this build {self.version}"
            raise ClusterError(f"Dask worker {addr} {said}: workers need the project's image (the same mlnb)")
        if self.store is None:
            return
        made = bundles.make_bundle(self.project)
        self._digest = made.digest
        self._bundle = exchange.push_bytes(self.store, made.data)  # a worker fetches it by hash, once
        warm = TaskRequest(task="", version=self.version, env_file=self._env_file(), overrides=self.project.overrides,
                           entry_point=self.project.entry_point, remote=self.store.url, digest=made.digest,
                           bundle=self._bundle)
        for addr in dask_cluster.workers(self.cluster):  # each unpacks and starts its fork server now, at once
            self._load[addr] = self._load.get(addr, 0) + 0.5  # a task sent there waits for it, but no longer
            self._warm.append(dask_cluster.submit(self.cluster, _warm, warm, retries=0, worker=addr,
                                                  strict=True, key=f"mlnb-warm-{uuid.uuid4().hex[:12]}",
                                                  done=functools.partial(self._done, addr, 0.5)))
        data = bundles.dvc_data(self.root)
        missing = [p for p in data if not p.exists()]
        if missing:
            raise UserInputError(f"{missing[0].relative_to(self.root)}: DVC-tracked data missing here: run `mlnb pull`")
        self._data = exchange.push(self.store, self.root, data, self._hashes)

    @property
    def slots(self) -> int:
        return self.cluster.slots()

    def __call__(self, name: str) -> None:
        """Run task ``name`` on a worker; return once its products are here (raise once its partial notebook is)."""
        if self.interrupted:
            raise TaskFailed(name, "interrupted (Ctrl-C)")
        environ = {k: os.environ[k] for k in _PASSED if os.environ.get(k)}
        resume = self.recorder.resume(name) if self.recorder is not None else None
        request = TaskRequest(task=name, version=self.version, env_file=self._env_file(),
                              overrides=self.project.overrides, entry_point=self.project.entry_point,
                              remote=self.store.url if self.store else None,
                              root=str(self.root) if self.store is None else None, digest=self._digest,
                              bundle=self._bundle, inputs=self._inputs(name), environ=environ,
                              snapshot_mb=self.recorder.limit_mb if self.recorder is not None else None,
                              resume=resume, snapshot=self._snapshot(name) if resume is not None else {})
        key = f"mlnb-{name}-{uuid.uuid4().hex[:12]}"
        addr = self._pick()  # the least busy worker: Dask would queue a task behind another on a busy one
        args = (_in_place, request) if self.store is None else (_on_worker, request)
        future = dask_cluster.submit(self.cluster, *args, key=key, retries=self.retries, worker=addr,
                                     done=functools.partial(self._done, addr, 1.0))
        with self._lock:
            self._futures[name] = future
        try:
            answer = dask_cluster.result(future)
        except (ClusterError, TaskFailed) as exc:
            raise TaskFailed(name, str(exc)) from None
        except Exception as exc:  # raised on the worker (after its retries) or cancelled by Ctrl-C
            if self.interrupted:
                raise TaskFailed(name, "interrupted (Ctrl-C)") from None
            raise TaskFailed(name, f"on the cluster: {remote_task.describe(exc)}") from None
        finally:
            with self._lock:
                self._futures.pop(name, None)
        result = remote_task.RemoteResult(**answer)
        self.worker_of[name] = result.worker
        self.phases[name] = result.phases
        if self.store is not None:
            exchange.fetch(self.store, self.root, result.products)
            if result.snapshot:  # the failure's snapshot, where `mlnb debug` and `--resume` look for it
                folder = snapshot_dir(self.project.spec.root, name)
                for old in folder.glob("*") if folder.is_dir() else []:
                    old.unlink()
                exchange.fetch(self.store, folder, result.snapshot)
        if not result.ok:
            raise RemoteTaskFailed(name, result.failure or "failed on the cluster", result.early_stop)
        with self._lock:
            self._sent[name] = result.products

    def _pick(self) -> str | None:
        with self._lock:
            live = dask_cluster.workers(self.cluster)
            if not live:
                return None
            addr = min(live, key=lambda a: self._load.get(a, 0))
            self._load[addr] = self._load.get(addr, 0) + 1
            return addr

    def _done(self, addr: str | None, weight: float, _future: Any) -> None:
        if addr is not None:
            with self._lock:
                self._load[addr] = max(0.0, self._load.get(addr, 0) - weight)

    def placed(self, name: str) -> tuple[str, dict[str, float]] | None:
        """Where task ``name`` ran in this build (``host:pid``) and its seconds there; None: not on a worker."""
        worker = self.worker_of.get(name)
        return (worker, self.phases.get(name, {})) if worker else None

    def interrupt(self, hard: bool) -> None:
        """Ctrl-C (the executor's handler): cancel what runs; the second time, restart a local cluster's workers."""
        self.interrupted += 1
        with self._lock:
            futures = list(self._futures.values())
        dask_cluster.cancel(self.cluster, futures)
        if hard and self.cluster.local is not None:
            dask_cluster.restart_workers(self.cluster)

    def _inputs(self, name: str) -> dict[str, str]:
        """What the task reads from elsewhere: its upstream tasks' products (pushed now if this build did not
        make them) and the DVC-tracked data."""
        if self.store is None:
            return {}
        inputs = dict(self._data)
        spec = self.project.spec
        for up in spec.tasks[name].upstream:
            with self._lock:
                sent = self._sent.get(up)
            if sent is None:
                paths = [p for p in spec.tasks[up].products.values() if p.exists()]
                with self._lock:
                    sent = exchange.push(self.store, self.root, paths, self._hashes)
                    self._sent[up] = sent
            inputs.update(sent)
        return inputs

    def _snapshot(self, name: str) -> dict[str, str]:
        """The snapshot task ``name`` resumes from, sent to the remote (nothing to send on a shared filesystem)."""
        folder = snapshot_dir(self.project.spec.root, name)
        if self.store is None or not folder.is_dir():
            return {}
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
        with self._lock:
            return exchange.push(self.store, folder, files, self._hashes)

    def _env_file(self) -> str | None:
        env_file = self.project.env_file
        if not env_file:
            return None
        path = Path(env_file).resolve()
        if not path.is_relative_to(self.root):
            raise UserInputError(f"--env-file {env_file}: outside the project, so workers do not get it; "
                                 "put it in the project")
        return path.relative_to(self.root).as_posix()


def _on_worker(request: TaskRequest) -> dict[str, Any]:
    """What a worker runs (by reference: the worker imports this module); a cancelled task's kernel is killed."""
    with dask_cluster.on_cancel(remote_task.stop_running):
        return remote_task.run_bundle(dask_cluster.work_dir(), request)


def _warm(request: TaskRequest) -> None:
    remote_task.warm(dask_cluster.work_dir(), request)


def _in_place(request: TaskRequest) -> dict[str, Any]:
    with dask_cluster.on_cancel(remote_task.stop_running):
        return remote_task.run_shared(request)


@contextmanager
def session(project: Project, options: ClusterOptions, recorder: FailureRecorder | None = None) -> Iterator[Session]:
    """Checks first (one line each), then the cluster: the scheduler given, or a local one closed at the end."""
    url = check(project, options)
    address = options.scheduler or settings.get("MLNB_DASK_SCHEDULER")
    retries = options.retries if options.retries is not None else settings.get("MLNB_DASK_RETRIES")
    workers = options.workers or os.cpu_count() or 1
    cluster = dask_cluster.connect(address, workers, retries)
    try:
        run = Session(project, options, url, cluster, recorder)
        run.prepare()
        yield run
    finally:
        dask_cluster.close(cluster)
