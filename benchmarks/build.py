"""`mlnb build` (fork engine) vs stock `ploomber build`, side by side, in alternation (A B A B ...).

1. The example pipeline: `ploomber build --force` vs `mlnb build --force --no-dvc`.
2. A synthetic chain of N small notebook tasks importing pandas and scikit-learn: the same
   comparison, plus the floor = the same code run as one plain Python script (one process,
   imports once). Per-task overhead = (median time - floor) / N.
3. No-op builds (everything up to date): `ploomber build` vs `mlnb build`.

Targets (issue "Fast builds"): per-task overhead <= 0.3 s; no-op <= 1 s; the example pipeline at
least 3x faster than stock `ploomber build --force`. Every run is a fresh process; each pair
starts from the same state. Telemetry is off for every command.

Usage: .venv/bin/python benchmarks/build.py [--rounds 3] [--tasks 10] [--skip-example]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import copy_project, git_init, write_notebook  # noqa: E402

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "true",
       "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1",
       "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
ENV.pop("MLFLOW_TRACKING_URI", None)

TASK_BODY = """\
import pandas as pd
from sklearn.linear_model import LogisticRegression
from pathlib import Path

frame = pd.read_csv(SOURCE) if SOURCE else pd.DataFrame({"x": range(200), "y": [i % 2 for i in range(200)]})
model = LogisticRegression().fit(frame[["x"]], frame["y"])
frame["x"] = frame["x"] + 1
frame.to_csv(TARGET, index=False)
print(len(frame), round(float(model.coef_[0][0]), 6))
"""


def make_chain(base: Path, n: int) -> Path:
    root = base / "chain"
    lines = ["tasks:"]
    for i in range(n):
        up = f"['t{i - 1}']" if i else "None"
        source = f"upstream['t{i - 1}']['data']" if i else "None"
        write_notebook(root / f"notebooks/t{i}.ipynb", [
            ("params", f"upstream = {up}\nproduct = None"),
            ("code", TASK_BODY.replace("SOURCE", source).replace("TARGET", "product['data']")),
        ])
        lines += [f"  - source: notebooks/t{i}.ipynb",
                  f"    product: {{nb: products/t{i}/t{i}.ipynb, data: products/t{i}/data.csv}}"]
    (root / "pipeline.yaml").write_text("\n".join(lines) + "\n")
    (root / "env.yaml").write_text("mlflow:\n  experiment: chain\n")
    floor = ["import os", "os.makedirs('floor', exist_ok=True)"]
    for i in range(n):
        source = f"'floor/t{i - 1}.csv'" if i else "None"
        floor.append(TASK_BODY.replace("SOURCE", source).replace("TARGET", f"'floor/t{i}.csv'"))
    (root / "floor.py").write_text("\n".join(floor))
    git_init(root)
    return root


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


STOCK_FORCE = [str(BIN / "ploomber"), "build", "--force"]
MLNB_FORCE = [str(BIN / "mlnb"), "build", "--force", "--no-dvc"]
STOCK_NOOP = [str(BIN / "ploomber"), "build"]
MLNB_NOOP = [str(BIN / "mlnb"), "build", "--no-dvc"]


def alternate(root: Path, commands: dict[str, list[str]], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, cmd in commands.items():
            times[name].append(timed(cmd, root))
    return times


def report(title: str, times: dict[str, list[float]], baseline: str) -> dict[str, float]:
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"\n{title}")
    for name, ts in times.items():
        ratio = "" if name == baseline else f"   {med[baseline] / med[name]:.2f}x faster than {baseline}"
        print(f"  {name:<28} median {med[name]:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in ts)}){ratio}")
    return med


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--skip-example", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlnb-bench-") as tmp:
        base = Path(tmp)
        if not args.skip_example:
            example = copy_project(base / "example")
            timed(MLNB_FORCE, example)  # warm the OS file cache and create the MLflow store
            med = report("1. example pipeline, forced", alternate(example, {
                "ploomber build --force": STOCK_FORCE, "mlnb build --force": MLNB_FORCE}, args.rounds),
                "ploomber build --force")
            print(f"  target: >= 3x   measured: {med['ploomber build --force'] / med['mlnb build --force']:.2f}x")
        chain = make_chain(base, args.tasks)
        timed(MLNB_FORCE, chain)
        times = alternate(chain, {"floor (one python script)": [sys.executable, "floor.py"],
                                  "ploomber build --force": STOCK_FORCE, "mlnb build --force": MLNB_FORCE},
                          args.rounds)
        med = report(f"2. chain of {args.tasks} pandas + scikit-learn tasks, forced", times, "ploomber build --force")
        floor = med["floor (one python script)"]
        for name in ("ploomber build --force", "mlnb build --force"):
            print(f"  per-task overhead {name:<24} {(med[name] - floor) / args.tasks:.3f} s (target <= 0.3 s)")
        timed(MLNB_NOOP, chain)
        med = report("3. no-op build (chain, all up to date)", alternate(chain, {
            "ploomber build": STOCK_NOOP, "mlnb build": MLNB_NOOP}, args.rounds), "ploomber build")
        print(f"  target: mlnb build <= 1 s   measured: {med['mlnb build']:.2f} s")


if __name__ == "__main__":
    main()
