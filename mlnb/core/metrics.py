"""The metrics the gate can be configured on, and paired tests on the same rows (pure numpy).

Each metric knows its direction (``greater_is_better``, as MLflow's ``MetricThreshold``) and its
*error*: ``1 - value`` for a metric bounded by 1 (f1, roc_auc, accuracy, precision, recall, r2),
the value itself for rmse and mae. The gate's "promotable" margin is a relative cut of that
error, which stays reachable near the ceiling (F1 0.9889 -> 0.9911 is a 20 % cut).

Paired comparisons resample the *same* rows for both models (bootstrap) and, for labels, count
discordant pairs (exact McNemar). All functions take array-likes and return plain floats/dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Metric:
    name: str
    greater_is_better: bool
    needs: str  # "labels" (classification predictions), "scores" (positive-class scores), "values" (regression)
    bounded: bool  # at most 1 (its error is 1 - value); else the error is the value itself

    def error(self, value: float) -> float:
        return 1.0 - value if self.bounded else value

    def from_error(self, error: float) -> float:
        return 1.0 - error if self.bounded else error

    def gain(self, candidate: float, reference: float) -> float:
        """How much better ``candidate`` is than ``reference`` (positive: better), in the metric's units."""
        return candidate - reference if self.greater_is_better else reference - candidate


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("f1", True, "labels", True), Metric("accuracy", True, "labels", True),
    Metric("precision", True, "labels", True), Metric("recall", True, "labels", True),
    Metric("roc_auc", True, "scores", True),
    Metric("rmse", False, "values", False), Metric("mae", False, "values", False), Metric("r2", True, "values", True),
)}


def _confusion_rows(y: Any, pred: Any) -> tuple[Any, Any, Any, Any]:
    """tp, fp, fn, tn of the positive class (1) for each row of a (resamples x n) matrix."""
    return (((pred == 1) & (y == 1)).sum(axis=-1), ((pred == 1) & (y != 1)).sum(axis=-1),
            ((pred != 1) & (y == 1)).sum(axis=-1), ((pred != 1) & (y != 1)).sum(axis=-1))


def _ratio(num: Any, den: Any) -> Any:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros(num.shape), where=den > 0)


def _auc_rows(y: Any, score: Any) -> Any:
    """ROC AUC per row (Mann-Whitney U on ranks); NaN where a row holds one class only."""
    from scipy.stats import rankdata

    ranks = rankdata(score, axis=-1)
    pos = (y == 1).sum(axis=-1).astype(float)
    neg = y.shape[-1] - pos
    u = np.where(y == 1, ranks, 0).sum(axis=-1) - pos * (pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((pos > 0) & (neg > 0), u / (pos * neg), np.nan)


def metric_rows(name: str, y: Any, out: Any) -> Any:
    """The metric for each row of (resamples x n) matrices ``y`` and ``out`` (labels, scores or values);
    a 1-d pair gives a 0-d result."""
    y, out = np.asarray(y), np.asarray(out)
    if name in ("f1", "precision", "recall", "accuracy"):
        tp, fp, fn, tn = _confusion_rows(y, out)
        if name == "f1":
            return _ratio(2 * tp, 2 * tp + fp + fn)
        if name == "precision":
            return _ratio(tp, tp + fp)
        if name == "recall":
            return _ratio(tp, tp + fn)
        return _ratio(tp + tn, tp + fp + fn + tn)
    if name == "roc_auc":
        return _auc_rows(y, out)
    y, out = y.astype(float), out.astype(float)
    if name == "rmse":
        return np.sqrt(((y - out) ** 2).mean(axis=-1))
    if name == "mae":
        return np.abs(y - out).mean(axis=-1)
    if name == "r2":
        total = ((y - y.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
        return 1.0 - _ratio(((y - out) ** 2).sum(axis=-1), total)
    raise KeyError(name)


def metric_value(name: str, y: Any, out: Any) -> float:
    return round(float(metric_rows(name, y, out)), 6)


def bootstrap_diff(name: str, y: Any, a: Any, b: Any, n: int, seed: int, alpha: float = 0.05) -> dict[str, Any]:
    """Paired bootstrap of metric(a) - metric(b): the same resampled rows for both models. Reports the
    mean difference, its (1 - alpha) percentile interval and how often ``a`` was not better."""
    y, a, b = (np.asarray(v) for v in (y, a, b))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), (n, len(y)))
    diffs = metric_rows(name, y[idx], a[idx]) - metric_rows(name, y[idx], b[idx])
    diffs = diffs[~np.isnan(diffs)]
    if not len(diffs):
        return {"test": "paired_bootstrap", "metric": name, "resamples": 0, "mean_diff": 0.0, "ci": [0.0, 0.0],
                "level": round(1 - alpha, 6), "p_not_better": 1.0}
    lo, hi = np.percentile(diffs, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    better = diffs > 0 if METRICS[name].greater_is_better else diffs < 0
    return {"test": "paired_bootstrap", "metric": name, "resamples": len(diffs),
            "mean_diff": round(float(diffs.mean()), 6), "ci": [round(float(lo), 6), round(float(hi), 6)],
            "level": round(1 - alpha, 6), "p_not_better": round(float(np.mean(~better)), 6)}


def mcnemar(y_true: Any, pred_a: Any, pred_b: Any) -> dict[str, Any]:
    """Exact (binomial) McNemar test on the discordant pairs of two classifiers."""
    from scipy.stats import binomtest

    y, a, b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    a_only = int(np.sum((a == y) & (b != y)))  # candidate right, reference wrong
    b_only = int(np.sum((a != y) & (b == y)))
    n = a_only + b_only
    p = 1.0 if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)
    return {"test": "mcnemar_exact", "candidate_only_correct": a_only, "reference_only_correct": b_only,
            "p_value": round(p, 6)}
