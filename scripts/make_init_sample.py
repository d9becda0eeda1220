"""Regenerate the sample dataset `mlnb init` ships (mlnb/templates/project/data/raw/sample.csv).

Deterministic (fixed seed), 400 rows, six numeric features and a binary ``label``: small enough to ship
(< 20 KB), separable enough that the scaffold's gate passes out of the box.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.datasets import make_classification

OUT = Path(__file__).resolve().parents[1] / "mlnb" / "templates" / "project" / "data" / "raw" / "sample.csv"
FEATURES = ["feature_a", "feature_b", "feature_c", "feature_d", "feature_e", "feature_f"]


def main() -> None:
    X, y = make_classification(n_samples=400, n_features=6, n_informative=4, n_redundant=1, class_sep=2.0,
                               weights=[0.6], flip_y=0.0, random_state=7)
    frame = pd.DataFrame(X, columns=FEATURES).round(3)
    frame["label"] = y
    OUT.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(OUT, index=False, lineterminator="\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(frame)} rows)")


if __name__ == "__main__":
    main()
