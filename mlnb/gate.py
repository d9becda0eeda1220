"""The metric gate: does the candidate beat the champion (pure logic, no MLflow).

Rule (env.yaml ``gate``): with a champion, pass when
``candidate F1 >= champion F1 + min_delta``; without one, pass when
``candidate F1 >= min_f1``. Both models are scored on the *same* test rows, and a
paired McNemar test plus a paired bootstrap of the F1 difference are reported so a
reviewer can tell a real improvement from noise. Significance is reported, not gated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlnb.errors import EnvError


@dataclass(frozen=True)
class GateConfig:
    min_f1: float
    min_delta: float
    bootstrap: int = 1000
    seed: int = 0

    @classmethod
    def from_env(cls, gate: dict[str, Any]) -> GateConfig:
        for key in ("min_f1", "min_delta"):
            if not isinstance(gate.get(key), int | float) or isinstance(gate.get(key), bool):
                raise EnvError(f"env.yaml: gate.{key}: expected a number, got {gate.get(key)!r}")
        if not 0 <= gate["min_f1"] <= 1:
            raise EnvError(f"env.yaml: gate.min_f1: must be within [0, 1], got {gate['min_f1']!r}")
        return cls(float(gate["min_f1"]), float(gate["min_delta"]), int(gate.get("bootstrap", 1000)),
                   int(gate.get("seed", 0)))


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str
    candidate_f1: float
    threshold: float | None  # None when the champion could not be scored
    against: str  # "champion" or "min_f1"
    champion: dict[str, Any] | None = None
    significance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar(y_true: Any, pred_a: Any, pred_b: Any) -> dict[str, Any]:
    """Exact (binomial) McNemar test on the discordant pairs of two classifiers."""
    import numpy as np
    from scipy.stats import binomtest

    y, a, b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    a_only = int(np.sum((a == y) & (b != y)))  # candidate right, reference wrong
    b_only = int(np.sum((a != y) & (b == y)))
    n = a_only + b_only
    p = 1.0 if n == 0 else float(binomtest(a_only, n, 0.5).pvalue)
    return {"test": "mcnemar_exact", "candidate_only_correct": a_only, "reference_only_correct": b_only,
            "p_value": round(p, 6)}


def _f1_rows(y: Any, pred: Any) -> Any:
    """F1 of the positive class for each row of a (resamples x n) matrix, vectorised."""
    tp = ((pred == 1) & (y == 1)).sum(axis=1)
    fp = ((pred == 1) & (y == 0)).sum(axis=1)
    fn = ((pred == 0) & (y == 1)).sum(axis=1)
    denom = 2 * tp + fp + fn
    import numpy as np

    return np.divide(2 * tp, denom, out=np.zeros(len(tp)), where=denom > 0)


def bootstrap_f1_diff(y_true: Any, pred_a: Any, pred_b: Any, n: int, seed: int) -> dict[str, Any]:
    """Paired bootstrap (same resampled rows for both) of F1(a) - F1(b): mean and 95% CI."""
    import numpy as np

    y, a, b = (np.asarray(v) for v in (y_true, pred_a, pred_b))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), (n, len(y)))
    diffs = _f1_rows(y[idx], a[idx]) - _f1_rows(y[idx], b[idx])
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"test": "paired_bootstrap_f1", "resamples": n, "mean_diff": round(float(diffs.mean()), 6),
            "ci95": [round(float(lo), 6), round(float(hi), 6)],
            "p_not_better": round(float(np.mean(diffs <= 0)), 6)}


def decide(candidate_f1: float, champion_f1: float | None, config: GateConfig) -> tuple[bool, float, str]:
    """Pure gate rule: returns (passed, threshold, one-line reason)."""
    if champion_f1 is None:
        threshold = config.min_f1
        passed = candidate_f1 >= threshold
        verb = "meets" if passed else "is below"
        return passed, threshold, f"no champion: candidate F1 {candidate_f1:.4f} {verb} gate.min_f1 {threshold:.4f}"
    threshold = round(champion_f1 + config.min_delta, 6)
    passed = candidate_f1 >= threshold
    if passed:
        reason = (f"candidate F1 {candidate_f1:.4f} >= champion F1 {champion_f1:.4f} + "
                  f"gate.min_delta {config.min_delta:.4f}")
    else:
        reason = (f"candidate F1 {candidate_f1:.4f} < champion F1 {champion_f1:.4f} + gate.min_delta "
                  f"{config.min_delta:.4f} (missed by {threshold - candidate_f1:.4f})")
    return passed, threshold, reason


def evaluate_gate(y_true: Any, candidate_pred: Any, config: GateConfig, *, champion_pred: Any = None,
                  champion_info: dict[str, Any] | None = None, baseline_pred: Any = None) -> GateResult:
    """Apply the rule and attach paired significance tests against the champion
    (or, without one, against the ``baseline_pred`` majority-class predictions)."""
    from sklearn.metrics import f1_score

    cand_f1 = round(float(f1_score(y_true, candidate_pred, zero_division=0)), 6)
    champ_f1 = None
    reference = baseline_pred
    if champion_pred is not None:
        champ_f1 = round(float(f1_score(y_true, champion_pred, zero_division=0)), 6)
        reference = champion_pred
    passed, threshold, reason = decide(cand_f1, champ_f1, config)
    significance: dict[str, Any] = {}
    if reference is not None:
        significance = {
            "reference": "champion" if champion_pred is not None else "majority_class_baseline",
            "mcnemar": mcnemar(y_true, candidate_pred, reference),
            "bootstrap": bootstrap_f1_diff(y_true, candidate_pred, reference, config.bootstrap, config.seed),
        }
    champion = None
    if champion_pred is not None:
        champion = dict(champion_info or {}, f1_on_this_test_split=champ_f1)
    return GateResult(passed, reason, cand_f1, threshold, "champion" if champion else "min_f1", champion,
                      significance)
