"""Live drift gauges of ``mlnb serve --drift-reference PATH``: per feature, the PSI of the last ``window`` rows
served against the reference's quantile bins (the same bins and PSI as ``mlnb monitor``, :mod:`mlnb.core.drift`),
and of the predicted classes against the reference's labels.

Cheap per request by construction: a request only appends its validated frame to a queue (a deque append);
a background thread bins what arrived every quarter of a second in one vectorised pass and keeps a ring of
the last ``window`` rows' bins with per-feature counts (a row entering adds one to its bins, the row it
replaces subtracts one). ``/metrics`` turns the counts into PSI when it is scraped. Numeric features only
(a categorical one is left to ``mlnb monitor``).

Series: ``mlnb_serve_drift_psi{feature}``, ``mlnb_serve_prediction_drift_psi``, ``mlnb_serve_drifted_features``
(PSI at or over ``psi``), ``mlnb_serve_drift_window_rows``; each with ``variant="champion"`` and ``worker``.
"""

from __future__ import annotations

import collections
import logging
import threading
from pathlib import Path
from typing import Any

from mlnb.core.drift import psi, quantile_edges
from mlnb.errors import ServingError

log = logging.getLogger("mlnb.serve")
INTERVAL_S = 0.25


class DriftGauges:
    def __init__(self, reference: Any, features: list[str], target: str | None, window: int = 1000,
                 bins: int = 10, threshold: float = 0.2) -> None:
        import numpy as np

        self.features = [f for f in features if f in reference.columns and reference[f].dtype.kind in "fiu"]
        if not self.features:
            raise ServingError("--drift-reference: none of the model's numeric input columns is in it")
        self.window, self.threshold = window, threshold
        self.edges = [quantile_edges(reference[f].dropna().to_numpy(dtype=float), bins) for f in self.features]
        self.width = max(len(e) for e in self.edges) + 1
        self.reference = [np.bincount(np.searchsorted(e, reference[f].dropna().to_numpy(dtype=float), side="right"),
                                      minlength=self.width) / max(reference[f].notna().sum(), 1)
                          for f, e in zip(self.features, self.edges, strict=True)]
        self.classes: list[str] = []
        if target and target in reference.columns:
            labels = reference[target].astype(str)
            self.classes = sorted(labels.unique())[:50]
            self.class_reference = np.array([(labels == c).mean() for c in self.classes])
        self._ring = np.zeros((window, len(self.features)), dtype=np.int16)
        self._pred_ring = np.full(window, -1, dtype=np.int16)
        self._counts = np.zeros((len(self.features), self.width), dtype=np.int64)
        self._pred_counts = np.zeros(len(self.classes) + 1, dtype=np.int64)
        self._filled = 0
        self._head = 0
        self._pending: collections.deque[tuple[Any, Any]] = collections.deque(maxlen=10_000)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlnb-drift", daemon=True)
        self._thread.start()

    def offer(self, frame: Any, predictions: Any) -> None:
        """A request's rows (never blocks: a deque append; the oldest are dropped past 10,000 requests)."""
        self._pending.append((frame, predictions))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            self.update()

    def update(self) -> None:
        """Bin what arrived since the last call (the background thread's step; tests call it directly)."""
        import numpy as np

        items = []
        while self._pending:
            items.append(self._pending.popleft())
        if not items:
            return
        try:
            matrix = np.vstack([f[self.features].to_numpy(dtype=float) for f, _p in items])
            preds = np.concatenate([np.asarray(p).reshape(len(f), -1)[:, 0] for f, p in items]) if self.classes \
                else None
        except Exception as exc:  # never a request's problem
            log.warning("drift gauges: a batch could not be binned: %s", type(exc).__name__)
            return
        bins = np.column_stack([np.searchsorted(e, matrix[:, j], side="right")
                                for j, e in enumerate(self.edges)]).astype(np.int16)
        bins[np.isnan(matrix)] = -1  # a missing value counts in no bin
        pred_bins = None
        if preds is not None:
            index = {c: i for i, c in enumerate(self.classes)}
            pred_bins = np.array([index.get(_label(p), len(self.classes)) for p in preds], dtype=np.int16)
        with self._lock:
            self._add(bins[-self.window:], None if pred_bins is None else pred_bins[-self.window:])

    def _add(self, bins: Any, pred_bins: Any | None) -> None:
        import numpy as np

        k = len(bins)
        slots = (self._head + np.arange(k)) % self.window
        cols = np.arange(len(self.features))
        if self._filled == self.window or self._filled + k > self.window:  # rows leave the window
            leaving = slots if self._filled == self.window else slots[self.window - self._filled:]
            old = self._ring[leaving]
            for j in cols:
                valid = old[:, j] >= 0
                np.subtract.at(self._counts[j], old[valid, j], 1)
            if pred_bins is not None:
                old_pred = self._pred_ring[leaving]
                np.subtract.at(self._pred_counts, old_pred[old_pred >= 0], 1)
        self._ring[slots] = bins
        for j in cols:
            valid = bins[:, j] >= 0
            np.add.at(self._counts[j], bins[valid, j], 1)
        if pred_bins is not None:
            self._pred_ring[slots] = pred_bins
            np.add.at(self._pred_counts, pred_bins, 1)
        self._head = (self._head + k) % self.window
        self._filled = min(self.window, self._filled + k)

    def scores(self) -> tuple[dict[str, float], float | None, int]:
        """Per feature PSI, the predictions' PSI (None without labels), and the rows in the window."""
        import numpy as np

        with self._lock:
            counts, pred_counts, rows = self._counts.copy(), self._pred_counts.copy(), self._filled
        if rows == 0:
            return {}, None, 0
        out = {}
        for j, name in enumerate(self.features):
            total = counts[j].sum()
            if total:
                out[name] = psi(self.reference[j], counts[j] / total)
        pred = None
        if self.classes and pred_counts.sum():
            pred = psi(np.append(self.class_reference, 0.0), pred_counts / pred_counts.sum())
        return out, pred, rows

    def render(self, worker: str) -> list[str]:
        from mlnb.serving.metrics import _labels

        scores, pred, rows = self.scores()
        out = ["# HELP mlnb_serve_drift_psi PSI of each feature over the last served rows against the reference.",
               "# TYPE mlnb_serve_drift_psi gauge"]
        out += [f"mlnb_serve_drift_psi{_labels(feature=n, variant='champion', worker=worker)} {v:.6f}"
                for n, v in scores.items()]
        out += ["# HELP mlnb_serve_drifted_features Features whose PSI is at or over the threshold.",
                "# TYPE mlnb_serve_drifted_features gauge",
                f"mlnb_serve_drifted_features{_labels(variant='champion', worker=worker)} "
                f"{sum(v >= self.threshold for v in scores.values())}",
                "# HELP mlnb_serve_drift_window_rows Rows the drift gauges are computed over.",
                "# TYPE mlnb_serve_drift_window_rows gauge",
                f"mlnb_serve_drift_window_rows{_labels(variant='champion', worker=worker)} {rows}"]
        if pred is not None:
            out += ["# HELP mlnb_serve_prediction_drift_psi PSI of the predicted classes against the reference's "
                    "labels.", "# TYPE mlnb_serve_prediction_drift_psi gauge",
                    f"mlnb_serve_prediction_drift_psi{_labels(variant='champion', worker=worker)} {pred:.6f}"]
        return out


def _label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def load_reference(path: Path, target: str | None) -> Any:
    """The reference table (parquet or CSV); one line when it cannot be read."""
    import pandas as pd

    try:
        if path.suffix.lower() == ".parquet":
            return pd.read_parquet(path)
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
    except Exception as exc:
        raise ServingError(f"--drift-reference {path}: cannot read it: {type(exc).__name__}") from None
    raise ServingError(f"--drift-reference {path}: expected a .parquet or .csv file")
