"""Ground truth for served predictions: ``POST /feedback`` and the live quality gauges.

    POST /feedback  {"feedback": [{"request_id": "<X-Request-Id of an answer>", "label": 1}, ...]}
                    (``label`` for a one-row request, ``labels`` [...] for each row of a longer one)
    -> 200 {"matched": n, "unknown": n, "duplicate": n}

Each record is appended to the prediction log (a line with ``"kind": "feedback"``), which ``mlnb monitor``
joins with the logged predictions: that is the complete view. The service also joins what it can at once:
the answers this process gave recently (the last 100,000 requests, their predictions kept in memory) feed,
per variant and model version, the accuracy (and for labels 0/1 the F1 of class 1) over the last ``window``
labelled rows, exported as ``mlnb_serve_live_metric{metric, variant, version}``. With ``--workers N`` a label
that reaches another worker than the one that answered is only in the log (``unknown`` here, counted).
A label sent twice for the same request counts once.
"""

from __future__ import annotations

import collections
import math
import re
import threading
from typing import Any

from mlnb.errors import BadRequest

_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_RECORDS = 10_000  # per POST
KEPT = 100_000  # recent answers whose predictions are kept for joining


class Feedback:
    def __init__(self, window: int = 1000) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._answers: collections.OrderedDict[str, tuple[str, str, list[Any]]] = collections.OrderedDict()
        self._labelled: set[str] = set()
        self._rings: dict[tuple[str, str], collections.deque[tuple[Any, Any]]] = {}
        self.counts = {"matched": 0, "unknown": 0, "duplicate": 0}

    def answered(self, request_id: str, variant: str, version: str, predictions: Any) -> None:
        """Keep an answer's predictions (at most 100 rows of it) for a label that may come later."""
        import numpy as np

        preds = np.asarray(predictions)[:100].tolist()
        with self._lock:
            self._answers[request_id] = (variant, version, preds)
            while len(self._answers) > KEPT:
                old, _ = self._answers.popitem(last=False)
                self._labelled.discard(old)

    def receive(self, records: list[dict[str, Any]]) -> dict[str, int]:
        """Join labels with the answers kept here; the outcome counts of this call."""
        out = {"matched": 0, "unknown": 0, "duplicate": 0}
        with self._lock:
            for record in records:
                request_id = record["request_id"]
                answer = self._answers.get(request_id)
                if answer is None:
                    out["unknown"] += 1
                    continue
                if request_id in self._labelled:
                    out["duplicate"] += 1
                    continue
                self._labelled.add(request_id)
                variant, version, preds = answer
                labels = record["labels"]
                ring = self._rings.setdefault((variant, version), collections.deque(maxlen=self.window))
                for pred, label in zip(preds, labels, strict=False):
                    ring.append((pred, label))
                out["matched"] += 1
            for key, n in out.items():
                self.counts[key] += n
        return out

    def metrics(self) -> dict[tuple[str, str], dict[str, float]]:
        """(variant, version) -> accuracy, and f1 when the labels are 0/1; with the labelled rows."""
        with self._lock:
            rings = {k: list(v) for k, v in self._rings.items()}
        return {key: quality(pairs) for key, pairs in rings.items() if pairs}

    def render(self, worker: str) -> list[str]:
        from mlnb.serving.metrics import _labels

        lines = ["# HELP mlnb_serve_feedback_total Labels received on /feedback, by whether they matched an "
                 "answer this process gave.", "# TYPE mlnb_serve_feedback_total counter"]
        with self._lock:
            counts = dict(self.counts)
        lines += [f"mlnb_serve_feedback_total{_labels(outcome=k, worker=worker)} {v}" for k, v in counts.items()]
        lines += ["# HELP mlnb_serve_live_metric Quality of the answers over the last labelled rows, per variant "
                  "and model version.", "# TYPE mlnb_serve_live_metric gauge"]
        for (variant, version), figures in sorted(self.metrics().items()):
            for metric, value in figures.items():
                if metric not in ("labelled_rows", "correct"):
                    labels = _labels(metric=metric, variant=variant, version=version, worker=worker)
                    lines.append(f"mlnb_serve_live_metric{labels} {value:.6f}")
            labels = _labels(variant=variant, version=version, worker=worker)
            lines.append(f"mlnb_serve_live_labelled_rows{labels} {int(figures['labelled_rows'])}")
        return lines


def parse(body: Any) -> list[dict[str, Any]]:
    """The records of a /feedback body (``{"feedback": [...]}`` or a bare list); 400 naming the first bad one."""
    records = body.get("feedback") if isinstance(body, dict) else body
    if not isinstance(records, list) or not records:
        raise BadRequest('feedback: expected {"feedback": [{"request_id": ..., "label": ...}, ...]}')
    if len(records) > MAX_RECORDS:
        raise BadRequest(f"feedback: {len(records)} records in one request; at most {MAX_RECORDS}")
    out = []
    for i, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("request_id"), str) \
                or not _REQUEST_ID.match(record["request_id"]):
            raise BadRequest(f"feedback[{i}].request_id: expected the 32-hex-digit X-Request-Id of an answer")
        if "labels" in record:
            labels = record["labels"]
            if not isinstance(labels, list) or not labels or len(labels) > 100_000:
                raise BadRequest(f"feedback[{i}].labels: expected a non-empty list (one label per row)")
        elif "label" in record:
            labels = [record["label"]]
        else:
            raise BadRequest(f"feedback[{i}]: expected label (one row) or labels (one per row)")
        if not all(isinstance(v, str | int | float | bool) and not isinstance(v, dict) for v in labels):
            raise BadRequest(f"feedback[{i}].label: expected a number, a string or a boolean")
        out.append({"request_id": record["request_id"], "labels": labels})
    return out


def quality(pairs: list[tuple[Any, Any]]) -> dict[str, float]:
    """(prediction, label) pairs -> accuracy (and correct, labelled_rows), and for 0/1 labels the F1 of class 1."""
    correct = sum(_same(p, y) for p, y in pairs)
    out = {"labelled_rows": float(len(pairs)), "correct": float(correct),
           "accuracy": correct / len(pairs) if pairs else math.nan}
    if pairs and all(_binary(y) for _p, y in pairs):
        tp = sum(_one(p) and _one(y) for p, y in pairs)
        fp = sum(_one(p) and not _one(y) for p, y in pairs)
        fn = sum(not _one(p) and _one(y) for p, y in pairs)
        out["f1"] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
    return out


def _same(pred: Any, label: Any) -> bool:
    try:
        return bool(float(pred) == float(label))
    except (TypeError, ValueError):
        return str(pred) == str(label)


def _binary(value: Any) -> bool:
    return value in (0, 1) and not isinstance(value, str)


def _one(value: Any) -> bool:
    try:
        return float(value) == 1.0
    except (TypeError, ValueError):
        return False
