"""Convert every notebook in a folder with `mlnb convert --check` and print a table.

    python scripts/check_conversions.py [FOLDER]    # default: examples/exploratory

Each notebook is converted into a scratch directory, its pipeline built, and its outputs compared
with the original's (stdout, displayed values, figure counts). Exit 1 if any does not reproduce.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "examples" / "exploratory"
    notebooks = sorted(folder.glob("*.ipynb"))
    rows, failed = [], 0
    with tempfile.TemporaryDirectory(prefix="mlnb-conversions-") as tmp:
        for nb in notebooks:
            out = Path(tmp) / nb.stem
            start = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "mlnb.cli", "convert", str(nb), "--out", str(out), "--check"],
                                 capture_output=True, text=True)
            seconds = time.perf_counter() - start
            spec = out / "pipeline.yaml"
            steps = len(yaml.safe_load(spec.read_text())["tasks"]) if spec.exists() else 0
            ok = res.returncode == 0
            failed += not ok
            rows.append((nb.name, steps, "yes" if ok else "NO", f"{seconds:.1f}"))
            if not ok:
                print(f"--- {nb.name} (exit {res.returncode})\n{(res.stdout + res.stderr)[-3000:]}", file=sys.stderr)
    width = max(len(r[0]) for r in rows) if rows else 8
    print(f"{'notebook':<{width}}  steps  reproduced  seconds")
    for name, steps, ok, seconds in rows:
        print(f"{name:<{width}}  {steps:>5}  {ok:>10}  {seconds:>7}")
    print(f"{len(rows) - failed}/{len(rows)} reproduced exactly")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
