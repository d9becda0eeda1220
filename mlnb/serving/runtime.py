"""What every serving process runs: load and warm a verified model, watch the alias, serve requests
(one worker's event loop), and take model updates from the supervisor (see :mod:`.server`)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.errors import FetchFailed, MlnbError, ServingError
from mlnb.serving import source
from mlnb.serving.metrics import Metrics
from mlnb.serving.model import ModelHolder, ServedModel
from mlnb.serving.source import Identity, ModelRef
from mlnb.serving.variants import CHALLENGER, CHAMPION, Slot, Split

log = logging.getLogger("mlnb.serve")


@dataclass(frozen=True)
class Options:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body: int = 10 * 2 ** 20
    poll_interval: float = 30.0
    verify: bool = True
    cache_dir: Path = Path(".mlnb/serve-cache")
    prediction_log: Path | None = None
    log_sample_rate: float = 1.0
    log_max_rows: int = 100
    log_max_bytes: int = 100 * 2 ** 20
    challenger: ModelRef | None = None  # served beside the champion (see mlnb.serving.variants)
    split: Split = field(default_factory=Split)
    drift_reference: Path | None = None  # live drift gauges against this table (mlnb.serving.drift)
    drift_target: str | None = None  # its label column (the predictions' reference)
    drift_window: int = 1000


def load(ref: ModelRef, options: Options, version: str | None = None) -> ServedModel:
    """Fetch (by version number), verify and load; the download is removed when the model is closed."""
    path, identity = source.fetch(ref, options.cache_dir, verify=options.verify, version=version)
    try:
        return ServedModel.load(path, identity,
                                (lambda: source.discard(path, options.cache_dir)) if ref.downloaded else None)
    except BaseException:
        if ref.downloaded:
            source.discard(path, options.cache_dir)
        raise


class Watcher(threading.Thread):
    """Poll the alias; on a move, hand the new version to ``deliver`` (which loads and swaps). The
    challenger's watcher also hands over None when its alias is removed (the challenger retires) and picks
    up an alias set later."""

    def __init__(self, ref: ModelRef, options: Options, serving: str | None, metrics: Metrics,
                 deliver: Callable[[str | None], None], variant: str = CHAMPION) -> None:
        super().__init__(name=f"mlnb-{variant}-watcher", daemon=True)
        self.ref, self.options, self.metrics, self.deliver, self.variant = ref, options, metrics, deliver, variant
        self.serving, self.failed, self.retrying = serving, set[str](), set[str]()
        self.stop = threading.Event()
        self._unreachable = False

    def run(self) -> None:
        while not self.stop.wait(self.options.poll_interval):
            self.check()

    def check(self) -> None:
        try:
            version = source.current_version(self.ref) if self.variant == CHAMPION \
                else source.version_if_set(self.ref)
        except MlnbError as exc:
            if not self._unreachable:
                log.warning("cannot read %s (still serving version %s): %s", self.ref.uri, self.serving, exc)
            self._unreachable = True
            return
        self._unreachable = False
        if version is None:  # the challenger's alias is gone: the champion answers everything
            if self.serving is not None:
                log.info("%s is not set any more: the %s retires (was version %s)", self.ref.uri, self.variant,
                         self.serving)
                self.deliver(None)
                self.serving = None
            self.failed.clear()
            return
        if version == self.serving or version in self.failed:
            return
        if version not in self.retrying:
            log.info("%s moved to version %s (%s, serving %s): loading it", self.ref.uri, version, self.variant,
                     self.serving)
        try:
            self.deliver(version)
        except FetchFailed as exc:  # the store hiccuped: try again at the next poll (said once)
            if version not in self.retrying:
                log.warning("version %s could not be fetched, will retry (still serving %s): %s", version,
                            self.serving, exc)
            self.retrying.add(version)
            return
        except Exception as exc:  # MlnbError, or anything a broken model raises while loading
            self.failed.add(version)
            self.metrics.count("swap_failures", variant=self.variant)
            log.error("version %s not served, still serving %s (%s): %s", version, self.serving or "none",
                      self.variant, _line(exc))
            return
        self.serving = version


def _line(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, MlnbError) else f"{type(exc).__name__}: {exc}"


def bind(host: str, port: int) -> list[Any]:
    from tornado.netutil import bind_sockets

    try:
        return bind_sockets(port, host, reuse_port=False)
    except OSError as exc:
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise ServingError(f"{host}:{port}: cannot listen: {reason}") from None


def check_loads(path: Path, identity: Identity) -> None:
    """Load and warm the model in a forked child and report back, so this process never runs the model:
    workers fork from it, and a native thread pool (OpenMP) started before a fork hangs the child."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        message = b""
        try:
            ServedModel.load(path, identity)
        except BaseException as exc:
            message = _line(exc).encode("utf-8", "replace") or b"failed"
        os.write(write, message[:4000])
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read()
    with contextlib.suppress(ChildProcessError):  # the supervisor's os.wait() may have reaped it
        os.waitpid(pid, 0)
    if message:
        raise ServingError(message.decode("utf-8", "replace"))


def start_watcher(ref: ModelRef, options: Options, identity: Identity, metrics: Metrics,
                  deliver: Callable[[str | None], None]) -> Watcher | None:
    metrics.model = (identity.model_name, identity.model_version)
    if not ref.watchable or options.poll_interval <= 0:
        return None
    watcher = Watcher(ref, options, identity.model_version, metrics, deliver)
    watcher.start()
    return watcher


def first_challenger(options: Options, metrics: Metrics,
                     fetch: Callable[[str | None], Any]) -> tuple[Any, str | None, set[str]]:
    """The challenger at start: ``fetch(version)``'s result (None when its alias is not set yet, or when it
    fails: logged and counted, the champion answers 100 %), the version it is, and the versions that failed."""
    ref = options.challenger
    assert ref is not None
    version: str | None = None
    try:
        if ref.watchable:
            version = source.version_if_set(ref)
            if version is None:
                log.info("%s is not set: the champion answers every request until it is", ref.uri)
                return None, None, set()
        return fetch(version), version, set()
    except Exception as exc:
        metrics.count("swap_failures", variant=CHALLENGER)
        log.error("challenger %s not served (the champion answers every request): %s", ref.uri, _line(exc))
        return None, None, {version} if version else set()


def watch_challenger(options: Options, serving: str | None, failed: set[str], metrics: Metrics,
                     deliver: Callable[[str | None], None]) -> Watcher | None:
    ref = options.challenger
    if ref is None or not ref.watchable or options.poll_interval <= 0:
        return None
    watcher = Watcher(ref, options, serving, metrics, deliver, CHALLENGER)
    watcher.failed |= failed
    watcher.start()
    return watcher


def run_worker(sockets: list[Any], holder: ModelHolder, metrics: Metrics, options: Options,
               versions: dict[str, str], updates: int | None = None, challenger: Slot | None = None,
               peers: Path | None = None) -> None:
    """One serving process's event loop, until SIGTERM/SIGINT (or, for a worker, its pipe closing)."""
    from tornado.httpserver import HTTPServer

    from mlnb.serving.app import State, make_app
    from mlnb.serving.predlog import PredictionLog

    predlog = None
    if options.prediction_log:
        path = options.prediction_log
        if updates is not None and options.workers > 1:
            path = path.with_name(f"{path.stem}.{metrics.worker}{path.suffix}")
        predlog = PredictionLog(path, metrics, options.log_sample_rate, options.log_max_rows,
                                options.log_max_bytes)
    state = State(holder, metrics, options.max_body, predlog, versions)
    if options.challenger is not None:
        state.with_challenger(challenger or Slot(), options.split)
    state.peers = peers
    if peers is not None:  # this worker's series, for whichever worker answers the next scrape
        threading.Thread(target=_share_metrics, args=(metrics, peers), name="mlnb-metrics-share",
                         daemon=True).start()
    extra = [state.feedback.render]
    if options.drift_reference is not None:
        from mlnb.serving.drift import DriftGauges, load_reference

        state.drift = DriftGauges(load_reference(options.drift_reference, options.drift_target),
                                  holder.current.schema.names, options.drift_target, options.drift_window)
        extra.append(state.drift.render)
    metrics.extra = lambda worker: [line for render in extra for line in render(worker)]
    gc.freeze()  # the imported stack and the model are long-lived: keep the collector from re-walking them

    async def main() -> None:
        server = HTTPServer(make_app(state), max_body_size=2 ** 62, body_timeout=60, idle_connection_timeout=75,
                            max_header_size=64 * 1024, chunk_size=1 << 20)
        server.add_sockets(sockets)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if updates is not None:
            threading.Thread(target=_read_updates, args=(updates, holder, state.challenger, metrics, loop, stop),
                             name="mlnb-worker-updates", daemon=True).start()
        await stop.wait()
        state.draining = True
        server.stop()
        if state.pending:  # responses being written finish first (with a deadline)
            await asyncio.wait(list(state.pending), timeout=10)
        try:
            await asyncio.wait_for(server.close_all_connections(), timeout=10)
        except TimeoutError:
            log.warning("connections still open after 10 s; closing anyway")

    asyncio.run(main())
    if state.comparer is not None:
        state.comparer.close()
    if state.drift is not None:
        state.drift.close()
    if predlog is not None:
        predlog.close()


def _share_metrics(metrics: Metrics, peers: Path, every: float = 1.0) -> None:
    """Write this worker's render to ``peers/worker-<index>.prom`` every second (whole files: renamed in)."""
    import time

    path = peers / f"worker-{metrics.worker}.prom"
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            tmp.write_text(metrics.render(), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:  # the supervisor removed the folder: it is shutting down
            return
        time.sleep(every)


def _read_updates(fd: int, holder: ModelHolder, challenger: Slot, metrics: Metrics,
                  loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """A worker's end of the supervisor's pipe: one JSON line per new version (its variant, directory and
    identity; a challenger's ``retire``)."""
    with os.fdopen(fd, "r", encoding="utf-8") as pipe:
        for line in pipe:
            update = json.loads(line)
            variant = update.get("variant", CHAMPION)
            if update.get("retire"):
                retire(challenger, metrics)
                continue
            identity = Identity(**update["identity"])
            try:
                new = ServedModel.load(Path(update["path"]), identity)
            except Exception as exc:
                metrics.count("swap_failures", variant=variant)
                log.error("worker %s: version %s not served (%s): %s", metrics.worker, identity.model_version,
                          variant, _line(exc))
                continue
            swapped_in(holder, challenger, metrics, variant, new)
    loop.call_soon_threadsafe(stop.set)  # the supervisor is gone: stop serving


def swapped_in(holder: ModelHolder, challenger: Slot, metrics: Metrics, variant: str, new: ServedModel) -> None:
    """Serve ``new`` as ``variant`` (the old model closed), and say so in the metrics."""
    old = holder.swap(new) if variant == CHAMPION else challenger.swap(new)
    if old is not None and variant == CHALLENGER:
        old.close()  # the champion's old model is closed by the caller that owns its download
    metrics.count("swaps", variant=variant)
    metrics.models[variant] = (new.identity.model_name, new.identity.model_version)


def retire(challenger: Slot, metrics: Metrics) -> None:
    old = challenger.swap(None)
    metrics.models.pop(CHALLENGER, None)
    if old is not None:
        old.close()
        log.info("the challenger (version %s) retired: the champion answers every request",
                 old.identity.model_version)


def identity_update(path: Path, identity: Identity, variant: str = CHAMPION) -> str:
    return json.dumps({"variant": variant, "path": str(path), "identity": identity.to_dict()}) + "\n"


def retire_update() -> str:
    return json.dumps({"variant": CHALLENGER, "retire": True}) + "\n"
