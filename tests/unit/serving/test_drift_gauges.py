"""The live drift gauges' ring of the last rows: PSI follows what is in the window, and only that."""

from __future__ import annotations

import numpy as np
import pandas as pd
from prometheus_client.parser import text_string_to_metric_families

from mlnb.core.drift import MonitorConfig, numeric_drift
from mlnb.serving.drift import DriftGauges


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame({"a": rng.normal(shift, 1, n), "b": rng.normal(5, 2, n)})


def test_the_window_holds_the_last_rows_and_psi_matches_the_batch_computation() -> None:
    rng = np.random.default_rng(0)
    ref = _frame(rng, 5000).assign(y=lambda f: (f["a"] > 0).astype(int))
    gauges = DriftGauges(ref, ["a", "b"], "y", window=500)
    try:
        for _ in range(6):  # 600 rows like the reference
            part = _frame(rng, 100)
            gauges.offer(part, (part["a"] > 0).astype(int).to_numpy())
        gauges.update()
        scores, pred, rows = gauges.scores()
        assert rows == 500 and max(scores.values()) < 0.05 and pred < 0.02
        moved = _frame(rng, 500, shift=1.0)  # the whole window replaced by shifted rows
        for start in range(0, 500, 50):
            part = moved.iloc[start:start + 50]
            gauges.offer(part, np.ones(len(part), dtype=int))
        gauges.update()
        scores, pred, rows = gauges.scores()
        expected = numeric_drift(ref["a"].to_numpy(), moved["a"].to_numpy(), MonitorConfig())["psi"]
        assert abs(scores["a"] - expected) < 1e-6  # the ring's counts are exactly the last 500 rows'
        assert scores["b"] < 0.05 and pred > 0.2
        text = "\n".join(gauges.render("0")) + "\n"
        by = {(s.name, s.labels.get("feature")): s.value for f in text_string_to_metric_families(text)
              for s in f.samples}
        assert by[("mlnb_serve_drifted_features", None)] == 1 and by[("mlnb_serve_drift_window_rows", None)] == 500
        assert by[("mlnb_serve_drift_psi", "a")] > 0.2
    finally:
        gauges.close()


def test_missing_values_count_in_no_bin() -> None:
    rng = np.random.default_rng(1)
    gauges = DriftGauges(_frame(rng, 1000), ["a", "b"], None, window=100)
    try:
        part = _frame(rng, 50)
        part.loc[:9, "a"] = np.nan
        gauges.offer(part, np.zeros(50))
        gauges.update()
        assert int(gauges._counts[0].sum()) == 40 and int(gauges._counts[1].sum()) == 50
    finally:
        gauges.close()
