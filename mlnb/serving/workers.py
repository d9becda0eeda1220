"""``mlnb serve --workers N``: N forked workers on one socket, supervised by the main process.

Workers never talk to MLflow: each loads and warms the newest version the supervisor has fetched and
verified, after the fork (the supervisor never runs the model: OpenMP and fork do not mix), and later
versions arrive as one JSON line over a pipe. The supervisor restarts a worker that dies (at most
``MAX_RESTARTS`` a minute), forwards SIGTERM/SIGINT and exits when every worker has exited. A worker
that cannot load the model at start exits with ``LOAD_FAILED`` and the supervisor stops. A challenger is
fetched, checked and sent the same way (a worker that cannot load it serves the champion alone). Each
worker writes its metrics into a private folder every second, and whichever worker answers ``/metrics``
adds the others' (labelled by ``worker``): one scrape sees every worker (Prometheus keeps its connection to
one of them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mlnb.errors import ServingError
from mlnb.serving import source
from mlnb.serving.metrics import Metrics
from mlnb.serving.model import ModelHolder, ServedModel
from mlnb.serving.runtime import (
    Options,
    check_loads,
    first_challenger,
    identity_update,
    retire_update,
    run_worker,
    start_watcher,
    watch_challenger,
)
from mlnb.serving.source import Identity, ModelRef
from mlnb.serving.variants import CHALLENGER, CHAMPION, Slot

log = logging.getLogger("mlnb.serve")
MAX_RESTARTS = 10
LOAD_FAILED = 3


class Supervisor:
    def __init__(self, sockets: list[Any], path: Path, identity: Identity, owned: bool, options: Options,
                 versions: dict[str, str], ref: ModelRef) -> None:
        self.sockets, self.options, self.versions, self.ref = sockets, options, versions, ref
        self.current = (path, identity)  # what a new worker loads: always the newest verified version
        self.challenger: tuple[Path, Identity] | None = None  # the same for the challenger (None: none)
        self.children: dict[int, tuple[int, int]] = {}  # pid -> (worker index, write end of its pipe)
        self.downloads: dict[str, list[Path]] = {CHAMPION: [path] if owned else [], CHALLENGER: []}
        self.lock = threading.RLock()  # re-entrant: the signal handler may run while _spawn holds it
        self.stopping = False
        self.failure = ""
        self.metrics = Metrics("supervisor")
        self.peers = Path(tempfile.mkdtemp(prefix="mlnb-metrics-"))  # each worker's series, shared
        self.restarts: list[float] = []

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        serving, failed = None, set[str]()
        if self.options.challenger is not None:
            self.challenger, serving, failed = first_challenger(self.options, self.metrics, self._fetched_challenger)
        for index in range(self.options.workers):
            self._spawn(index)
        watchers = [start_watcher(self.ref, self.options, self.current[1], self.metrics, self._deliver),
                    watch_challenger(self.options, serving, failed, self.metrics, self._deliver_challenger)]
        log.info("%d workers serving", self.options.workers)
        try:
            self._wait()
        finally:
            for watcher in watchers:
                if watcher:
                    watcher.stop.set()
            for path in [*self.downloads[CHAMPION], *self.downloads[CHALLENGER]]:
                source.discard(path, self.options.cache_dir)
            shutil.rmtree(self.peers, ignore_errors=True)
        if self.failure:
            raise ServingError(self.failure)

    def _wait(self) -> None:
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                return
            with self.lock:
                index, fd = self.children.pop(pid, (None, None))
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if index is None or self.stopping:
                continue
            if os.WIFEXITED(status) and os.WEXITSTATUS(status) == LOAD_FAILED:
                self.failure = f"worker {index} could not load {self.current[1].model_uri} (see the log)"
                self._stop(signal.SIGTERM, None)
                continue
            log.error("worker %d (pid %d) exited (%s)", index, pid, _status(status))
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < 60] + [now]
            if len(self.restarts) > MAX_RESTARTS:
                self.failure = f"workers keep dying ({len(self.restarts)} restarts in a minute)"
                self._stop(signal.SIGTERM, None)
                continue
            self._spawn(index)

    def _stop(self, signum: int, _frame: Any) -> None:
        self.stopping = True
        with self.lock:
            pids = list(self.children)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _spawn(self, index: int) -> None:
        read, write = os.pipe()
        with self.lock:
            path, identity = self.current
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(write)
                for _, fd in self.children.values():
                    with contextlib.suppress(OSError):
                        os.close(fd)
                os._exit(_worker(index, path, identity, read, self, self.challenger))
            os.close(read)
            self.children[pid] = (index, write)

    def _deliver(self, version: str | None) -> None:
        """Fetch and verify once, check that it loads (in a throwaway child), then send it to every worker."""
        assert version is not None
        path, identity = self._fetched(self.ref, version, CHAMPION)
        with self.lock:
            self.current = (path, identity)
            self._send(identity_update(path, identity))
            self._keep(CHAMPION, path)
        self.metrics.count("swaps")

    def _fetched_challenger(self, version: str | None) -> tuple[Path, Identity]:
        assert self.options.challenger is not None
        path, identity = self._fetched(self.options.challenger, version, CHALLENGER)
        self._keep(CHALLENGER, path)
        return path, identity

    def _deliver_challenger(self, version: str | None) -> None:
        if version is None:  # its alias was removed: every worker retires it
            with self.lock:
                self.challenger = None
                self._send(retire_update())
            self.metrics.models.pop(CHALLENGER, None)
            return
        path, identity = self._fetched_challenger(version)
        with self.lock:
            self.challenger = (path, identity)
            self._send(identity_update(path, identity, CHALLENGER))
        self.metrics.count("swaps", variant=CHALLENGER)

    def _fetched(self, ref: ModelRef, version: str | None, variant: str) -> tuple[Path, Identity]:
        path, identity = source.fetch(ref, self.options.cache_dir, verify=self.options.verify, version=version)
        try:
            check_loads(path, identity)
        except BaseException:
            if ref.downloaded:
                source.discard(path, self.options.cache_dir)
            raise
        return path, identity

    def _send(self, line: str) -> None:
        for _, fd in self.children.values():
            with contextlib.suppress(BrokenPipeError):
                os.write(fd, line.encode("utf-8"))

    def _keep(self, variant: str, path: Path) -> None:
        """Keep the newest two downloads of each variant (workers may still be loading the one before)."""
        ref = self.ref if variant == CHAMPION else self.options.challenger
        if ref is None or not ref.downloaded:
            return
        with self.lock:
            kept = self.downloads[variant]
            kept.append(path)
            while len(kept) > 2:
                source.discard(kept.pop(0), self.options.cache_dir)


def _worker(index: int, path: Path, identity: Identity, updates: int, supervisor: Supervisor,
            challenger: tuple[Path, Identity] | None = None) -> int:
    """A worker's life, in the forked child: load and warm, serve, return an exit code."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        model = ServedModel.load(path, identity)
    except BaseException as exc:
        log.error("worker %d: %s", index, exc)
        return LOAD_FAILED
    metrics = Metrics(str(index))
    metrics.model = (identity.model_name, identity.model_version)
    slot = Slot()
    if challenger is not None:
        try:
            slot.swap(ServedModel.load(*challenger))
            metrics.models[CHALLENGER] = (challenger[1].model_name, challenger[1].model_version)
        except BaseException as exc:  # the champion answers everything in this worker
            metrics.count("swap_failures", variant=CHALLENGER)
            log.error("worker %d: challenger not served: %s", index, exc)
    try:
        run_worker(supervisor.sockets, ModelHolder(model), metrics, supervisor.options, supervisor.versions,
                   updates=updates, challenger=slot, peers=supervisor.peers)
    except BaseException as exc:  # a worker reports its own death in one line
        log.error("worker %d: %s: %s", index, type(exc).__name__, exc)
        return 1
    return 0


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"
