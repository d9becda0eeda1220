"""Create ``data/raw/breast_cancer.csv`` from scikit-learn's bundled dataset.

No network: ``load_breast_cancer`` reads the copy shipped inside scikit-learn.
The output is deterministic (same bytes every run) and written atomically.
Usage: ``python scripts/make_raw_data.py [--out data/raw/breast_cancer.csv] [--force]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sklearn.datasets import load_breast_cancer

from mlnb.core.io import atomic_path

TARGET = "diagnosis"  # 0 = malignant, 1 = benign (scikit-learn's encoding)


def snake(name: str) -> str:
    return name.strip().replace(" ", "_").lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="data/raw/breast_cancer.csv")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"{out} exists; leaving it alone (use --force to recreate)")
        return 0
    frame = load_breast_cancer(as_frame=True).frame
    frame = frame.rename(columns={c: snake(c) for c in frame.columns}).rename(columns={"target": TARGET})
    with atomic_path(out) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")
    print(f"wrote {out} ({len(frame)} rows, {frame.shape[1]} columns)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
