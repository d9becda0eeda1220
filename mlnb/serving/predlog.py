"""The prediction log: a sampled JSONL record of inputs and outputs, for drift monitoring.

Requests only put a reference on a bounded queue (``offer``, never blocks); a writer thread turns
records into JSON lines and appends them, one ``write`` per line on an ``O_APPEND`` file, so several
workers can share one log. When the queue is full the record is dropped and counted
(``mlnb_serve_prediction_log_dropped_total``). Past ``max_bytes`` the file is rotated to ``<path>.1``.
A challenger's records say ``"variant": "challenger"``; its shadow copies also ``"shadow": true`` (the
request id is the champion's answer's, so the two lines pair up).

One line::

    {"time": "2026-12-02T19:40:01.123Z", "request_id": "...", "model_name": "...", "model_version": "3",
     "variant": "champion", "rows": 1000, "logged_rows": 100, "columns": [...], "inputs": [[...], ...],
     "predictions": [...]}
"""

from __future__ import annotations

import logging
import os
import queue
import random
import threading
import time
from pathlib import Path
from typing import Any

from mlnb.serving.metrics import Metrics

log = logging.getLogger("mlnb.serve")
_STOP = object()


class PredictionLog:
    def __init__(self, path: str | Path, metrics: Metrics, sample_rate: float = 1.0, max_rows: int = 100,
                 max_bytes: int = 100 * 2 ** 20, queue_size: int = 10_000) -> None:
        self.path, self.metrics = Path(path), metrics
        self.sample_rate, self.max_rows, self.max_bytes = sample_rate, max_rows, max_bytes
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._random = random.Random()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="mlnb-prediction-log", daemon=True)
        self._thread.start()

    def offer(self, request_id: str, identity: Any, frame: Any, predictions: Any, variant: str = "champion",
              shadow: bool = False) -> None:
        """Maybe log this request (sampled); never blocks the request."""
        if self.sample_rate < 1.0 and self._random.random() >= self.sample_rate:
            return
        rows = len(frame)
        if rows > self.max_rows:  # the queue holds only what will be written
            frame, predictions = frame.iloc[: self.max_rows], predictions[: self.max_rows]
        try:
            self._queue.put_nowait((time.time(), request_id, identity, frame, predictions, rows, variant, shadow))
        except queue.Full:
            self.metrics.count("log_dropped")

    def feedback(self, records: list[dict[str, Any]]) -> None:
        """Labels sent to /feedback, one line each (``"kind": "feedback"``), for ``mlnb monitor`` to join."""
        try:
            self._queue.put_nowait(("feedback", time.time(), records))
        except queue.Full:
            self.metrics.count("log_dropped")

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the writer."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                if item[0] == "feedback":
                    self._write(self._feedback_lines(item[1], item[2]))
                    continue
                self._write(self._line(*item))
            except Exception as exc:  # a full disk must not take the service down; say so once per record
                self.metrics.count("log_dropped")
                log.warning("prediction log %s: %s: %s", self.path, type(exc).__name__, exc)

    def _line(self, ts: float, request_id: str, identity: Any, frame: Any, predictions: Any, n: int,
              variant: str = "champion", shadow: bool = False) -> bytes:
        import numpy as np
        import orjson

        head, preds = frame, predictions  # offer() kept at most max_rows of each
        if isinstance(preds, np.ndarray):
            preds = preds.tolist()
        elif hasattr(preds, "to_dict"):
            preds = preds.to_dict(orient="records") if hasattr(preds, "columns") else preds.tolist()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
        record = {"time": stamp, "request_id": request_id, "model_name": identity.model_name,
                  "model_version": identity.model_version, "variant": variant, "rows": n, "logged_rows": len(head),
                  "columns": list(head.columns), "inputs": head.to_numpy().tolist(), "predictions": preds}
        if shadow:  # scored after the answer, never returned
            record["shadow"] = True
        return orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"

    def _feedback_lines(self, ts: float, records: list[dict[str, Any]]) -> bytes:
        import orjson

        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
        return b"".join(orjson.dumps({"time": stamp, "kind": "feedback", "request_id": r["request_id"],
                                      "labels": r["labels"]}) + b"\n" for r in records)

    def _write(self, line: bytes) -> None:
        try:
            if self.path.stat().st_size + len(line) > self.max_bytes:
                os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        except FileNotFoundError:
            pass
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
