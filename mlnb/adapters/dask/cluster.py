"""A Dask cluster to run tasks on: an existing scheduler, or a local cluster of worker processes.

The only module that imports ``distributed``. The build asks for little: connect, check that the workers
run this mlnb, send the project's sources once, submit a task function and wait for it, cancel, close.

Retries: a task function that *raises* (the exchange with the remote failed, say) is retried ``retries``
times by Dask; a worker that *dies* mid-task makes the scheduler run the task again on another worker, up
to ``distributed.scheduler.allowed-failures`` times (set to ``retries`` on a local cluster; on an external
scheduler it is that scheduler's configuration, default 3), after which the task fails with Dask's
``KilledWorker``, named in one line.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from mlnb.errors import ClusterError


@dataclass
class Cluster:
    client: Any
    local: Any | None  # the LocalCluster this build started (closed with it)
    address: str

    def slots(self) -> int:
        """Tasks the workers can run at once (their threads)."""
        workers = self.client.scheduler_info().get("workers", {})
        return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def connect(address: str | None, workers: int, retries: int, timeout: float = 20) -> Cluster:
    """The scheduler at ``address`` (``tcp://HOST:PORT``), or a new local cluster of ``workers`` worker
    processes, one thread each (papermill is not thread-safe), on 127.0.0.1."""
    try:
        import dask
        from distributed import Client
    except ImportError:
        raise ClusterError("--executor dask: Dask is not installed: pip install 'mlnb[cluster]'") from None

    try:
        if address:
            client = Client(address, timeout=timeout, set_as_default=False)
            return Cluster(client, None, address)
        from distributed import LocalCluster

        with dask.config.set({"distributed.scheduler.allowed-failures": retries,
                              "distributed.worker.daemon": False}):  # workers start kernels (child processes)
            local = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                 dashboard_address=None, silence_logs=logging.CRITICAL,
                                 local_directory=tempfile.gettempdir())
        client = Client(local, set_as_default=False)
        return Cluster(client, local, local.scheduler_address)
    except OSError as exc:
        raise ClusterError(f"Dask scheduler {address or '(local)'}: cannot connect ({exc})") from None


def wait_for_workers(cluster: Cluster, n: int = 1, timeout: float = 60) -> None:
    try:
        cluster.client.wait_for_workers(n, timeout=timeout)
    except TimeoutError:
        raise ClusterError(f"Dask scheduler {cluster.address}: no worker joined within {timeout:g} s") from None


def worker_versions(cluster: Cluster) -> dict[str, str | None]:
    """The mlnb version each worker has installed (None: not installed)."""
    got = cluster.client.run(metadata.version, "mlnb", on_error="return")
    return {addr: value if isinstance(value, str) else None for addr, value in got.items()}


def submit(cluster: Cluster, fn: Any, *args: Any, key: str, retries: int, worker: str | None = None,
           strict: bool = False, done: Callable[[Any], None] | None = None) -> Any:
    """Run ``fn(*args)`` on a worker; its future. ``worker``: on that one (``strict``: only there; else another
    when it is gone). ``done`` is called when the future finishes, whatever the outcome."""
    placed = {"workers": [worker], "allow_other_workers": not strict} if worker else {}
    future = cluster.client.submit(fn, *args, key=key, pure=False, retries=retries, **placed)
    if done is not None:
        future.add_done_callback(done)
    return future


def workers(cluster: Cluster) -> list[str]:
    return list(cluster.client.scheduler_info().get("workers", {}))


def result(future: Any) -> Any:
    """The task function's return value; one line when the cluster gave up on it."""
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker as exc:
        raise ClusterError(f"the workers running it died too often (Dask KilledWorker: {exc})") from None


def cancel(cluster: Cluster, futures: list[Any]) -> None:
    if futures:
        cluster.client.cancel(futures, force=True)


def restart_workers(cluster: Cluster) -> None:
    """Stop what the workers run now (their processes are restarted; their kernels die with them)."""
    try:
        cluster.client.restart(wait_for_workers=False)
    except Exception:  # best effort on the way out (Ctrl-C twice)
        pass


def close(cluster: Cluster) -> None:
    cluster.client.close()
    if cluster.local is not None:
        cluster.local.close()


def work_dir() -> Path:
    """On a worker: a directory of its own for mlnb (under the worker's local directory)."""
    from distributed import get_worker

    try:
        base = Path(get_worker().local_directory)
    except ValueError:  # not on a worker (a test calling the task function directly)
        base = Path(tempfile.gettempdir())
    path = base / "mlnb"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def on_cancel(callback: Callable[[], None], every: float = 0.25) -> Iterator[None]:
    """On a worker, around a task function: call ``callback`` (once) when the build cancels the task (Ctrl-C),
    so what the task started can be stopped rather than left to finish for nobody."""
    from distributed import get_worker

    try:
        worker = get_worker()
        key = worker.get_current_task()
    except ValueError:  # not on a worker
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.wait(every):
            state = worker.state.tasks.get(key)
            if state is None or state.state in ("cancelled", "released", "forgotten"):
                callback()
                return

    watcher = threading.Thread(target=watch, name="mlnb-cancel-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
