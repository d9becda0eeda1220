"""``mlnb serve --workers N``: N forked workers on one socket, supervised by the main process.

Workers never talk to MLflow: they serve the model they inherited at fork and load new versions from
directories the supervisor has already fetched and verified (sent as one JSON line over a pipe). The
supervisor restarts a worker that dies (at most ``MAX_RESTARTS`` a minute), forwards SIGTERM/SIGINT and
exits when every worker has exited.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from mlnb.serving import source
from mlnb.serving.metrics import Metrics
from mlnb.serving.model import ModelHolder, ServedModel
from mlnb.serving.server import Options, identity_update, run_worker, start_watcher
from mlnb.serving.source import ModelRef

log = logging.getLogger("mlnb.serve")
MAX_RESTARTS = 10


class Supervisor:
    def __init__(self, sockets: list[Any], model: ServedModel, options: Options, versions: dict[str, str],
                 ref: ModelRef) -> None:
        self.sockets, self.model, self.options, self.versions, self.ref = sockets, model, options, versions, ref
        self.children: dict[int, tuple[int, int]] = {}  # pid -> (worker index, write end of its pipe)
        self.latest: str | None = None  # the update line for the newest version, sent to new workers
        self.downloads: list[Path] = []
        self.lock = threading.Lock()
        self.stopping = False
        self.metrics = Metrics("supervisor")
        self.restarts: list[float] = []

    def run(self) -> None:
        for index in range(self.options.workers):
            self._spawn(index)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        watcher = start_watcher(self.ref, self.options, self.model, self.metrics, self._deliver)
        log.info("%d workers serving", self.options.workers)
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            with self.lock:
                index, fd = self.children.pop(pid, (None, None))
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if index is None or self.stopping:
                continue
            log.error("worker %d (pid %d) exited (%s)", index, pid, _status(status))
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < 60] + [now]
            if len(self.restarts) > MAX_RESTARTS:
                log.error("workers keep dying (%d restarts in a minute): stopping", len(self.restarts))
                self._stop(signal.SIGTERM, None)
                continue
            self._spawn(index)
        if watcher:
            watcher.stop.set()
        self.model.close()
        for path in self.downloads:
            source.discard(path, self.options.cache_dir)

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
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(write)
                for _, fd in self.children.values():
                    with contextlib.suppress(OSError):
                        os.close(fd)
                code = 0
                try:
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    metrics = Metrics(str(index))
                    metrics.model = (self.model.identity.model_name, self.model.identity.model_version)
                    run_worker(self.sockets, ModelHolder(self.model), metrics, self.options, self.versions,
                                updates=read)
                except BaseException as exc:  # a worker reports its own death in one line
                    log.error("worker %d: %s: %s", index, type(exc).__name__, exc)
                    code = 1
                os._exit(code)
            os.close(read)
            self.children[pid] = (index, write)
            if self.latest:
                self._send(write, self.latest)

    def _deliver(self, version: str) -> None:
        """Fetch and verify once, check that it loads here, then send it to every worker."""
        path, identity = source.fetch(self.ref, self.options.cache_dir, verify=self.options.verify, version=version)
        try:
            ServedModel.load(path, identity)  # fail here, once, rather than in every worker
        except BaseException:
            source.discard(path, self.options.cache_dir)
            raise
        line = identity_update(path, identity)
        with self.lock:
            self.latest = line
            for _, fd in self.children.values():
                self._send(fd, line)
            self.downloads.append(path)
            while len(self.downloads) > 2:  # workers may still be loading the one before
                source.discard(self.downloads.pop(0), self.options.cache_dir)
        self.metrics.count("swaps")

    @staticmethod
    def _send(fd: int, line: str) -> None:
        with contextlib.suppress(BrokenPipeError):
            os.write(fd, line.encode("utf-8"))


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"
