"""Run the scoring service: fetch and verify the model, bind, serve; watch the alias; hot-swap.

Process model. The main process resolves, fetches and verifies the model (the only process that talks
to MLflow) and binds the socket. With one worker it also loads, warms and serves. With ``--workers N``
it checks that the model loads in a throwaway child, forks N workers that share the socket and each
load the newest verified version, and then only supervises (restarts a worker that dies, forwards
SIGTERM/SIGINT) and watches. It never runs the model itself: a native thread pool (OpenMP) started
before ``fork`` hangs the child.

Hot swap. When the URI names an alias (``models:/m@champion``), a watcher thread polls the registry every
``poll_interval`` seconds. A new version is fetched by number, its hash checked, then loaded and
warmed *beside* the serving one, and swapped in with one reference assignment: requests in flight
finish on the old object. With workers, the main process fetches and verifies once and sends each
worker the directory over a pipe; each worker loads, warms and swaps on its own. A version that fails
at any step is logged, counted (``mlnb_serve_model_swap_failures_total``) and not retried; the old
version keeps serving.

Challenger. With ``--challenger URI`` a second model is served beside the champion and shares requests as
:mod:`.variants` says (``--traffic P`` or ``--shadow``). It hot-swaps like the champion; when its alias is
removed (``mlnb canary abort`` or ``promote``) it retires; a version that fails to load is not served and
the champion answers every request meanwhile.

Shutdown. SIGTERM or SIGINT: ``/ready`` turns 503, the socket stops accepting, responses being written
finish (10 s at most), open connections close, the prediction log is flushed, exit 0.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from mlnb.errors import ServingError, redact
from mlnb.serving import source
from mlnb.serving.metrics import Metrics
from mlnb.serving.model import ModelHolder
from mlnb.serving.runtime import (
    Options,
    bind,
    check_loads,
    first_challenger,
    load,
    retire,
    run_worker,
    start_watcher,
    swapped_in,
    watch_challenger,
)
from mlnb.serving.source import Identity, ModelRef
from mlnb.serving.variants import CHALLENGER, Slot
from mlnb.serving.workers import Supervisor

__all__ = ["Options", "serve", "setup_logging"]


def serve(ref: ModelRef, options: Options, versions: dict[str, str],
          ready: Callable[[Identity, list[Any]], None] | None = None) -> None:
    """Serve until SIGTERM/SIGINT. ``ready`` is called once listening (the CLI prints the address)."""
    if options.prediction_log:  # a path we cannot append to is one line now, not a worker's traceback later
        try:
            options.prediction_log.parent.mkdir(parents=True, exist_ok=True)
            with open(options.prediction_log, "ab"):
                pass
        except OSError as exc:
            raise ServingError(f"{options.prediction_log}: cannot write the prediction log: {exc.strerror}") \
                from None
    if options.drift_reference is not None:  # unreadable: one line now, not one per worker later
        from mlnb.serving.drift import load_reference

        load_reference(options.drift_reference, options.drift_target)
    if options.workers > 1:
        path, identity = source.fetch(ref, options.cache_dir, verify=options.verify)
        try:
            check_loads(path, identity)  # one clear error now, not one per worker
            sockets = bind(options.host, options.port)
        except BaseException:
            if ref.downloaded:
                source.discard(path, options.cache_dir)
            raise
        if ready:
            ready(identity, sockets)
        Supervisor(sockets, path, identity, ref.downloaded, options, versions, ref).run()
        return
    model = load(ref, options)
    metrics = Metrics("0")
    challenger, serving, failed = None, None, set[str]()
    if options.challenger is not None:
        second = options.challenger
        challenger, serving, failed = first_challenger(options, metrics, lambda v: load(second, options, v))
    try:
        sockets = bind(options.host, options.port)
    except BaseException:
        model.close()
        if challenger is not None:
            challenger.close()
        raise
    if ready:
        ready(model.identity, sockets)
    holder, slot = ModelHolder(model), Slot(challenger)
    if challenger is not None:
        metrics.models[CHALLENGER] = (challenger.identity.model_name, challenger.identity.model_version)

    def swap_in(version: str | None) -> None:
        assert version is not None  # the champion's alias is never "not set" here: the watcher says so
        new = load(ref, options, version)
        holder.swap(new).close()
        metrics.count("swaps")
        metrics.model = (new.identity.model_name, new.identity.model_version)

    def challenger_in(version: str | None) -> None:
        if version is None:
            retire(slot, metrics)
        else:
            assert options.challenger is not None
            swapped_in(holder, slot, metrics, CHALLENGER, load(options.challenger, options, version))

    watchers = [start_watcher(ref, options, model.identity, metrics, swap_in),
                watch_challenger(options, serving, failed, metrics, challenger_in)]
    run_worker(sockets, holder, metrics, options, versions, challenger=slot)
    for watcher in watchers:
        if watcher:
            watcher.stop.set()
    holder.current.close()
    if slot.current is not None:
        slot.current.close()


class _Redacting(logging.Formatter):
    """Log lines never carry a URI's credentials (an MLflow error may quote the tracking URI)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Redacting("%(asctime)s mlnb serve[%(process)d] %(levelname)s %(message)s"))
    for name in ("mlnb.serve", "mlnb.serve.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
    logging.getLogger("mlnb.serve").setLevel(level)
