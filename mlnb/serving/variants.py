"""Champion and challenger in one ``mlnb serve``: who answers a request, and the comparison of the two.

    mlnb serve models:/m@champion --challenger models:/m@challenger --traffic 10   # 10 % answered by it
    mlnb serve models:/m@champion --challenger models:/m@challenger --shadow       # both score, champion answers

Routing. With ``--traffic P`` a request is answered by the challenger with probability P %. A request that
carries the routing header (``X-Routing-Key`` by default: a user or session id) is sticky: its key is
hashed (BLAKE2b, the same in every worker and every restart, unlike Python's salted ``hash``) to a bucket in
0..9999, and buckets below ``P * 100`` go to the challenger, so one key never switches variant while P holds.
With ``--shadow`` the champion answers every request and the challenger scores a copy of it afterwards.

Comparison. After the answer is sent, a background thread scores the same rows with the variant that did
not answer (the challenger in shadow mode; the champion for the challenger's share of a canary) and counts
the rows on which the two agree, so ``mlnb canary status`` can show agreement. Copies that arrive within
a quarter of a second of the first are scored in one call (one bad copy in it: each is scored alone, so
errors are counted per request): the thread then takes the interpreter a few times a second rather than
once per request, which is what keeps answers as fast as without a challenger (``benchmarks/serve.py``:
per-request scoring put the champion's p99 at 2x). A copy's latency is that of the call it was scored in.
That thread has a bounded queue: when it falls behind, copies are dropped and counted
(``mlnb_serve_shadow_dropped_total``), never waited for; a challenger that is slow or raises changes
neither the answer nor its latency.

No challenger (none given, its alias removed, or its version failed to load): the champion answers 100 %.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlnb.serving.metrics import Metrics
from mlnb.serving.model import ServedModel

log = logging.getLogger("mlnb.serve")
CHAMPION, CHALLENGER = "champion", "challenger"
VARIANTS = (CHAMPION, CHALLENGER)
ROUTING_HEADER = "X-Routing-Key"
_BUCKETS = 10_000
BATCH_WAIT_S = 0.25  # copies gathered into one scoring call
BATCH_ROWS = 2_000


@dataclass(frozen=True)
class Split:
    """How requests are shared: ``traffic`` percent to the challenger, or ``shadow`` (all to both, the
    champion answers)."""

    traffic: float = 0.0
    shadow: bool = False
    header: str = ROUTING_HEADER
    queue_size: int = 64  # comparisons waiting for the background thread before new ones are dropped


def bucket(key: str) -> int:
    """The sticky bucket (0..9999) of a routing key."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _BUCKETS


class Slot:
    """One variant's model, swapped atomically (None: nothing to serve, as a challenger may be)."""

    def __init__(self, model: ServedModel | None = None) -> None:
        self._model = model
        self._lock = threading.Lock()

    @property
    def current(self) -> ServedModel | None:
        return self._model

    def swap(self, new: ServedModel | None) -> ServedModel | None:
        with self._lock:
            old, self._model = self._model, new
        return old


class Router:
    """Which variant answers a request."""

    def __init__(self, split: Split, challenger: Slot) -> None:
        self.split, self.challenger = split, challenger
        self._threshold = round(split.traffic * _BUCKETS / 100)
        self._random = random.Random()

    def pick(self, key: str | None) -> str:
        if self.split.shadow or self._threshold <= 0 or self.challenger.current is None:
            return CHAMPION
        at = bucket(key) if key else self._random.randrange(_BUCKETS)
        return CHALLENGER if at < self._threshold else CHAMPION


class Comparer:
    """Scores a copy of an answered request with the other variant, after the answer, on one thread."""

    def __init__(self, metrics: Metrics, score: Callable[[str, Any], Any],
                 log_other: Callable[[str, str, Any, Any], None] | None = None, size: int = 64) -> None:
        self.metrics, self.score, self.log_other = metrics, score, log_other
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=size)
        self._thread = threading.Thread(target=self._run, name="mlnb-compare", daemon=True)
        self._thread.start()

    def offer(self, other: str, request_id: str, frame: Any, answer: Any) -> None:
        try:
            self._queue.put_nowait((other, request_id, frame, answer))
        except queue.Full:
            self.metrics.count("shadow_dropped")

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            for other in {item[0] for item in batch}:
                self._compare(other, [item for item in batch if item[0] == other])

    def _next_batch(self) -> list[Any] | None:
        """The next copies to score: what arrived within ``BATCH_WAIT_S`` of the first (at most ``BATCH_ROWS``
        rows), so the other variant scores them in one call and holds the interpreter once, not per request."""
        first = self._queue.get()
        if first is None:
            return None
        batch, rows = [first], len(first[2])
        deadline = time.monotonic() + BATCH_WAIT_S
        while rows < BATCH_ROWS and (left := deadline - time.monotonic()) > 0:
            try:
                item = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                self._queue.put_nowait(None)  # stop after this batch
                break
            batch.append(item)
            rows += len(item[2])
        return batch

    def _compare(self, other: str, items: list[Any]) -> None:
        import pandas as pd

        start = time.perf_counter()
        try:
            frame = items[0][2] if len(items) == 1 else pd.concat([i[2] for i in items], ignore_index=True)
            predictions = self.score(other, frame)
        except Exception:  # one bad copy must not cost the others their comparison: one by one
            if len(items) > 1:
                for item in items:
                    self._compare(other, [item])
                return
            self.metrics.scored_error(other)
            log.warning("request %s: the %s raised while scoring a copy", items[0][1], other)
            return
        if predictions is None:  # that variant is gone (the challenger retired meanwhile)
            return
        elapsed = time.perf_counter() - start
        at = 0
        for _other, request_id, part, answer in items:
            mine = predictions[at:at + len(part)]
            at += len(part)
            if other == CHALLENGER:  # the time of the call its copy was scored in (the champion's is measured
                self.metrics.scored(elapsed, len(part), CHALLENGER)  # where it answers)
            self.metrics.compared(len(part), agreeing(answer, mine))
            if self.log_other is not None:
                self.log_other(other, request_id, part, mine)


def agreeing(a: Any, b: Any) -> int:
    """Rows on which two predictions agree (classes equal; numbers within 1e-6 relative)."""
    import numpy as np

    left, right = np.asarray(a), np.asarray(b)
    if left.shape != right.shape:
        return 0
    if left.dtype.kind in "fc" or right.dtype.kind in "fc":
        try:
            same = np.isclose(left.astype("float64"), right.astype("float64"), rtol=1e-6, atol=0)
        except (TypeError, ValueError):
            same = left == right
    else:
        same = left == right
    same = np.asarray(same)
    return int(same.reshape(len(same), -1).all(axis=1).sum()) if same.ndim else int(bool(same))
