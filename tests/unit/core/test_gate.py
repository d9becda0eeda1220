"""The gate: healthy vs promotable, on any configured metric, and its paired tests."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm
import yaml

from mlnb.core.gate import FAILED, NOT_PROMOTABLE, PROMOTABLE, GateConfig, decide, evaluate_gate, headline
from mlnb.core.metrics import METRICS, bootstrap_diff, mcnemar, metric_rows, metric_value
from mlnb.errors import EnvError
from tests.conftest import REPO

CFG = GateConfig(bootstrap=500, seed=1)  # f1, threshold 0.9, min_delta 0.02, 20 % error cut


def test_the_committed_gate_section_is_valid_and_the_defaults() -> None:
    for name in ("params.yaml", "env.ci.yaml"):
        section = yaml.safe_load((REPO / name).read_text())["gate"]
        config = GateConfig.from_env(section, name)
        assert config.metric == "f1" and config.greater_is_better is True


def test_the_champion_at_f1_0_9889_can_still_be_beaten() -> None:
    """The seed's rule (champion + 0.02) needed F1 1.0089 here: every later build failed."""
    verdict, reason, checks = decide(0.9889, CFG, baseline=0.7725, champion=0.9889, champion_ci=[0.0, 0.0],
                                     champion_name="champion v1")
    assert verdict == NOT_PROMOTABLE  # healthy: the build passes (exit 0), `mlnb promote` refuses it
    assert "cut 0% < gate.min_relative_change 20% (needs f1 0.9912)" in reason
    assert [c.name for c in checks if c.held] == ["threshold", "baseline", "not_worse"]
    # one mistake fewer on the 143 test rows (tp 90, fp 1, fn 0): error 0.0111 -> 0.0055, a 50 % cut
    verdict, reason, _ = decide(0.9945, CFG, baseline=0.7725, champion=0.9889, champion_ci=[0.0, 0.0111])
    assert verdict == PROMOTABLE and "cut 50% >= gate.min_relative_change 20%" in reason
    assert decide(0.99112, CFG, champion=0.9889, champion_ci=[0.0, 0.01])[0] == PROMOTABLE  # exactly 20 %
    assert decide(0.9911, CFG, champion=0.9889, champion_ci=[0.0, 0.01])[0] == NOT_PROMOTABLE


def test_failed_only_below_the_floor_below_the_baseline_or_significantly_worse() -> None:
    assert decide(0.95, CFG, baseline=0.77)[0] == PROMOTABLE  # no champion yet
    verdict, reason, _ = decide(0.85, CFG, baseline=0.77)
    assert verdict == FAILED and reason == "f1 0.8500 is below gate.threshold 0.9000"
    verdict, reason, _ = decide(0.92, CFG, baseline=0.91)
    assert verdict == FAILED and "beats majority_class (0.9100) by +0.0100, needs gate.min_delta 0.0200" in reason
    verdict, reason, _ = decide(0.95, CFG, baseline=0.77, champion=0.99, champion_ci=[-0.07, -0.01])
    assert verdict == FAILED and reason == ("f1 0.9500 is significantly worse than champion 0.9900 "
                                                  "(95% interval of the difference [-0.0700, -0.0100])")
    # worse, but within the noise: healthy, not promotable
    assert decide(0.98, CFG, baseline=0.77, champion=0.99, champion_ci=[-0.03, 0.01])[0] == NOT_PROMOTABLE


def test_an_unscorable_champion_is_no_free_pass() -> None:
    verdict, reason, _ = decide(0.99, CFG, baseline=0.77, champion_note="champion v3 could not score the test rows")
    assert verdict == NOT_PROMOTABLE and reason.startswith("champion v3 could not score")


def test_lower_is_better_metrics_use_their_direction() -> None:
    config = GateConfig.from_env({"metric": "rmse", "threshold": 20.0, "baseline": "mean", "min_delta": 1.0})
    assert config.greater_is_better is False
    assert decide(7.5, config, baseline=30.0, champion=10.0, champion_ci=[-3.0, -1.0])[0] == PROMOTABLE  # 25 % cut
    assert decide(9.0, config, baseline=30.0, champion=10.0, champion_ci=[-2.0, 0.0])[0] == NOT_PROMOTABLE  # 10 %
    assert decide(12.0, config, baseline=30.0, champion=10.0, champion_ci=[1.0, 3.0])[0] == FAILED
    verdict, reason, _ = decide(25.0, config, baseline=30.0)
    assert verdict == FAILED and "rmse 25.0000 is above gate.threshold 20.0000" in reason
    r2 = GateConfig.from_env({"metric": "r2", "threshold": 0.5, "baseline": "mean", "min_delta": 0.1})
    assert decide(0.92, r2, baseline=0.0, champion=0.9, champion_ci=[0.0, 0.04])[0] == PROMOTABLE  # 0.1 -> 0.08


def test_significance_can_be_required() -> None:
    config = GateConfig(require_significance=True)
    assert decide(0.9945, config, champion=0.9889, champion_ci=[0.0, 0.0111])[0] == NOT_PROMOTABLE
    assert decide(0.9945, config, champion=0.9889, champion_ci=[0.001, 0.0111])[0] == PROMOTABLE


@pytest.mark.parametrize(("gate", "message"), [
    ({"min_f1": 0.9}, "gate.min_f1: renamed: use gate.threshold (with gate.metric: f1)"),
    ({"metric": "F1"}, "gate.metric: expected one of f1, accuracy"),
    ({"min_delta": "x"}, "gate.min_delta: expected a number, got 'x'"),
    ({"threshold": True}, "gate.threshold: expected a number, got True"),
    ({"alpha": 1.5}, "gate.alpha: must be between 0 and 1, got 1.5"),
    ({"min_relative_change": 1}, "gate.min_relative_change: must be below 1"),
    ({"bootstrap": -1}, "gate.bootstrap: expected a whole number >= 0, got -1"),
    ({"greater_is_better": False}, "gate.greater_is_better: f1 is higher-is-better, got False"),
    ({"metric": "rmse"}, "gate.baseline: expected mean or models:/NAME/VERSION for rmse, got 'majority_class'"),
    ({"treshold": 0.9}, "gate.treshold: unknown key"),
    ([1], "gate: expected a mapping"),
])
def test_config_errors_name_the_key_and_value(gate: object, message: str) -> None:
    with pytest.raises(EnvError, match="^params.yaml: " + message.replace("(", r"\(").replace(")", r"\)")):
        GateConfig.from_env(gate)


def test_vectorised_metrics_match_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (20, 60))
    p = rng.integers(0, 2, (20, 60))
    s = rng.random((20, 60))
    for name, fn in (("f1", skm.f1_score), ("precision", skm.precision_score), ("recall", skm.recall_score),
                     ("accuracy", skm.accuracy_score)):
        np.testing.assert_allclose(metric_rows(name, y, p), [fn(y[i], p[i], **(
            {} if name == "accuracy" else {"zero_division": 0})) for i in range(20)])
    np.testing.assert_allclose(metric_rows("roc_auc", y, s), [skm.roc_auc_score(y[i], s[i]) for i in range(20)])
    t, v = rng.normal(size=(20, 60)), rng.normal(size=(20, 60))
    np.testing.assert_allclose(metric_rows("mae", t, v), [skm.mean_absolute_error(t[i], v[i]) for i in range(20)])
    np.testing.assert_allclose(metric_rows("rmse", t, v), [np.sqrt(((t[i] - v[i]) ** 2).mean()) for i in range(20)])
    np.testing.assert_allclose(metric_rows("r2", t, v), [skm.r2_score(t[i], v[i]) for i in range(20)])
    assert set(METRICS) == {"f1", "roc_auc", "accuracy", "precision", "recall", "rmse", "mae", "r2"}


def test_mcnemar_counts_discordant_pairs() -> None:
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    a = np.array([1, 1, 1, 1, 0, 0, 0, 1])  # 7 right
    b = np.array([0, 0, 1, 1, 0, 0, 0, 0])  # 6 right
    res = mcnemar(y, a, b)
    assert (res["candidate_only_correct"], res["reference_only_correct"]) == (2, 1)
    assert res["p_value"] == 1.0  # 2 vs 1 is no evidence at all


def test_bootstrap_detects_a_real_difference_and_not_a_null_one() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    good = np.where(rng.random(300) < 0.95, y, 1 - y)
    bad = np.where(rng.random(300) < 0.70, y, 1 - y)
    better = bootstrap_diff("f1", y, good, bad, 500, 0)
    assert better["ci"][0] > 0 and better["p_not_better"] < 0.01 and better["level"] == 0.95
    same = bootstrap_diff("f1", y, good, good, 500, 0)
    assert same["mean_diff"] == 0 and same["p_not_better"] == 1.0 and same["ci"] == [0.0, 0.0]
    worse_rmse = bootstrap_diff("rmse", y.astype(float), bad.astype(float), good.astype(float), 500, 0)
    assert worse_rmse["ci"][0] > 0 and worse_rmse["p_not_better"] == 1.0  # higher rmse: never better


def test_evaluate_gate_on_real_predictions_for_any_metric() -> None:
    y = np.array([1] * 60 + [0] * 40)
    cand = y.copy()
    cand[:3] = 0
    champ = y.copy()
    champ[:1] = 0
    majority = np.ones_like(y)
    res = evaluate_gate(y, cand, CFG, champion_out=champ, champion_info={"version": "4"}, baseline_out=majority,
                        labels={"candidate": cand, "champion": champ, "baseline": majority})
    assert res.verdict == NOT_PROMOTABLE and res.champion["version"] == "4" and res.rows == 100
    assert res.champion["value"] == metric_value("f1", y, champ) and res.baseline["value"] == metric_value(
        "f1", y, majority)
    assert res.significance["reference"] == "champion"
    assert res.significance["mcnemar"]["reference_only_correct"] == 2
    assert res.to_dict()["passed"] and not res.to_dict()["promotable"]
    assert headline(res.to_dict()).startswith(
        "gate: not promotable: f1 0.9744 vs champion v4 0.9916: error 0.0084 -> 0.0256, up 205% < gate.min_relative_")
    scores = np.where(y == 1, 0.9, 0.1)
    auc = GateConfig(metric="roc_auc", threshold=0.8, bootstrap=200)
    res = evaluate_gate(y, scores, auc, baseline_out=np.ones(100))
    assert (res.verdict, res.metric, res.candidate, res.baseline["value"]) == (PROMOTABLE, "roc_auc", 1.0, 0.5)


def test_significantly_worse_needs_the_bootstrap_and_mcnemar_to_agree() -> None:
    """143 rows, a champion with 2 mistakes: 4 more mistakes is bad luck or worse; 6 more is worse."""
    y = np.array([1] * 90 + [0] * 53)
    champ = y.copy()
    champ[[0, 90]] = 1 - champ[[0, 90]]
    majority = np.ones_like(y)
    verdicts = {}
    for more in (1, 4, 6):
        cand = champ.copy()
        cand[1:1 + more] = 0
        res = evaluate_gate(y, cand, GateConfig(), champion_out=champ, champion_info={"version": "1"},
                            baseline_out=majority, labels={"candidate": cand, "champion": champ, "baseline": majority})
        verdicts[more] = res.verdict
        if more == 4:  # the bootstrap alone would call it worse; McNemar (4 vs 0, p 0.125) does not
            assert res.significance["bootstrap"]["ci"][1] < 0 and res.significance["mcnemar"]["p_value"] > 0.05
    assert verdicts == {1: NOT_PROMOTABLE, 4: NOT_PROMOTABLE, 6: FAILED}
