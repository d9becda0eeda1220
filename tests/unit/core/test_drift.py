"""Drift scores on synthetic data where the truth is known: exactly the shifted columns are flagged, fresh
samples of the reference flag none (the false-positive rate the module documents)."""

from __future__ import annotations

import numpy as np
import pytest

from mlnb.core.drift import MonitorConfig, categorical_drift, column_drift, numeric_drift, psi
from mlnb.errors import EnvError

CONFIG = MonitorConfig()


def _reference(rng: np.random.Generator, n: int = 5000) -> np.ndarray:
    return rng.normal(loc=np.arange(30) * 3.0, scale=np.linspace(0.5, 5, 30), size=(n, 30))


def test_fresh_samples_of_the_reference_flag_nothing() -> None:
    rng = np.random.default_rng(0)
    ref = _reference(rng)
    flagged = 0
    for _ in range(20):
        cur = _reference(rng, 1000)
        flagged += sum(numeric_drift(ref[:, j], cur[:, j], CONFIG)["drifted"] for j in range(30))
    assert flagged == 0  # 600 column tests, none over the thresholds


def test_exactly_the_shifted_and_rescaled_columns_are_flagged() -> None:
    rng = np.random.default_rng(1)
    ref = _reference(rng)
    cur = _reference(rng, 1000)
    sd = np.linspace(0.5, 5, 30)
    cur[:, 3] += 0.5 * sd[3]  # half a standard deviation
    cur[:, 7] = (cur[:, 7] - 7 * 3.0) * 2 + 7 * 3.0  # twice the spread, same mean
    scores = [numeric_drift(ref[:, j], cur[:, j], CONFIG) for j in range(30)]
    assert [j for j, s in enumerate(scores) if s["drifted"]] == [3, 7]
    assert 0.4 < scores[3]["wasserstein"] < 0.6  # reads as "half a standard deviation"
    assert scores[7]["psi"] > CONFIG.psi and abs(scores[7]["current_mean"] - scores[7]["reference_mean"]) < 0.5


def test_a_new_category_and_shifted_shares_are_flagged_but_a_fresh_sample_is_not() -> None:
    rng = np.random.default_rng(2)
    cats = np.array(["a", "b", "c"])
    ref = rng.choice(cats, 5000, p=[0.5, 0.3, 0.2])
    same = categorical_drift(ref, rng.choice(cats, 1000, p=[0.5, 0.3, 0.2]), CONFIG)
    assert not same["drifted"] and same["chi2_p"] > 0.001
    new = np.concatenate([rng.choice(cats, 900, p=[0.5, 0.3, 0.2]), ["d"] * 100])
    scored = categorical_drift(ref, new, CONFIG)
    assert scored["drifted"] and scored["new_values"] == ["d"] and scored["current_shares"][-1] == pytest.approx(0.1)
    moved = categorical_drift(ref, rng.choice(cats, 1000, p=[0.2, 0.3, 0.5]), CONFIG)
    assert moved["drifted"] and moved["chi2_p"] < 1e-6


def test_classes_are_categorical_and_psi_is_symmetric_in_sign() -> None:
    ref = np.array([0] * 600 + [1] * 400)
    assert column_drift(ref, np.array([0] * 300 + [1] * 700), CONFIG)["kind"] == "categorical"
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0
    assert psi([0.6, 0.4], [0.4, 0.6]) == pytest.approx(psi([0.4, 0.6], [0.6, 0.4]))


@pytest.mark.parametrize("section, message", [
    ({"psi": "high"}, "monitor.psi: expected float"),
    ({"bins": 1}, "monitor.bins: expected 2 to 100"),
    ({"threshold": 0.1}, "monitor.threshold: unknown key"),
    ([1], "monitor: expected a mapping"),
])
def test_bad_thresholds_are_one_line(section: object, message: str) -> None:
    with pytest.raises(EnvError, match=message):
        MonitorConfig.from_env(section)
    assert MonitorConfig.from_env({"psi": 1, "bins": 20}).psi == 1.0
