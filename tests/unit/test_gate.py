"""The gate rule and its paired significance tests."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from mlnb.errors import EnvError
from mlnb.gate import GateConfig, _f1_rows, bootstrap_f1_diff, decide, evaluate_gate, mcnemar

CFG = GateConfig(min_f1=0.9, min_delta=0.02, bootstrap=500, seed=1)


def test_no_champion_uses_min_f1() -> None:
    assert decide(0.95, None, CFG)[0] is True
    passed, threshold, reason = decide(0.85, None, CFG)
    assert not passed and threshold == 0.9 and "below gate.min_f1 0.9000" in reason


def test_champion_needs_min_delta() -> None:
    assert decide(0.97, 0.95, CFG)[:2] == (True, 0.97)  # exactly champion + delta passes
    passed, _, reason = decide(0.969, 0.95, CFG)
    assert not passed and reason.endswith("(missed by 0.0010)")


def test_config_rejects_bad_values() -> None:
    with pytest.raises(EnvError, match="gate.min_delta: expected a number, got 'x'"):
        GateConfig.from_env({"min_f1": 0.9, "min_delta": "x"})
    with pytest.raises(EnvError, match=r"gate.min_f1: must be within \[0, 1\], got 3"):
        GateConfig.from_env({"min_f1": 3, "min_delta": 0.0})


def test_mcnemar_counts_discordant_pairs() -> None:
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    a = np.array([1, 1, 1, 1, 0, 0, 0, 1])  # 7 right
    b = np.array([0, 0, 1, 1, 0, 0, 0, 0])  # 6 right
    res = mcnemar(y, a, b)
    assert (res["candidate_only_correct"], res["reference_only_correct"]) == (2, 1)
    assert res["p_value"] == 1.0  # 2 vs 1 is no evidence at all
    assert mcnemar(y, y, y)["p_value"] == 1.0


def test_vectorised_f1_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (20, 50))
    p = rng.integers(0, 2, (20, 50))
    expected = [f1_score(y[i], p[i]) for i in range(20)]
    np.testing.assert_allclose(_f1_rows(y, p), expected)


def test_bootstrap_detects_a_real_difference_and_not_a_null_one() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    good = np.where(rng.random(300) < 0.95, y, 1 - y)
    bad = np.where(rng.random(300) < 0.70, y, 1 - y)
    better = bootstrap_f1_diff(y, good, bad, 500, 0)
    assert better["ci95"][0] > 0 and better["p_not_better"] < 0.01
    same = bootstrap_f1_diff(y, good, good, 500, 0)
    assert same["mean_diff"] == 0 and same["p_not_better"] == 1.0


def test_evaluate_gate_against_champion_and_baseline() -> None:
    y = np.array([1] * 60 + [0] * 40)
    cand = y.copy()
    cand[:3] = 0
    champ = y.copy()
    champ[:1] = 0
    res = evaluate_gate(y, cand, CFG, champion_pred=champ, champion_info={"version": "4"})
    assert not res.passed and res.against == "champion" and res.champion["version"] == "4"
    assert res.significance["reference"] == "champion"
    base = evaluate_gate(y, cand, CFG, baseline_pred=np.ones_like(y))
    assert base.passed and base.against == "min_f1"
    assert base.significance["reference"] == "majority_class_baseline"
