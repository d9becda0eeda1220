"""`mlnb monitor` on a large prediction log: 1 M logged rows x 30 features (goal: under 5 s here).

The log is written in `mlnb serve`'s own format (`mlnb.serving.predlog`: one JSON line per request, 100 rows
each, 10,000 lines), the reference is 5,000 rows of the same distribution with two columns of the log moved
(so the run does real work on both verdicts). Timed: the installed CLI end to end (imports included, `--json
--no-mlflow`), and in-process the log reading and the drift scores apart.

Usage: .venv/bin/python benchmarks/monitor.py [--rows 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MLNB = str(Path(sys.executable).with_name("mlnb"))


def write_log(path: Path, rows: int, per_line: int = 100) -> None:
    import numpy as np
    import orjson

    rng = np.random.default_rng(0)
    columns = [f"f{i}" for i in range(30)]
    with open(path, "wb") as fh:
        for n in range(rows // per_line):
            block = rng.normal(np.arange(30), 1.0, size=(per_line, 30))
            block[:, 3] += 0.5
            record = {"time": f"2026-12-06T10:{n // 6000 % 60:02d}:{n // 100 % 60:02d}.000Z", "request_id": f"{n:032x}",
                      "model_name": "bench", "model_version": "1", "variant": "champion", "rows": per_line,
                      "logged_rows": per_line, "columns": columns, "inputs": block,
                      "predictions": (block[:, 0] > 0).astype(int)}
            fh.write(orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import numpy as np
    import pandas as pd

    work = Path(tempfile.mkdtemp(prefix="mlnb-bench-monitor-"))
    (work / "pipeline.yaml").write_text("tasks: []\n")
    (work / "env.yaml").write_text("mlflow:\n  experiment: bench\ndata:\n  target: label\n")
    rng = np.random.default_rng(1)
    ref = pd.DataFrame(rng.normal(np.arange(30), 1.0, size=(5000, 30)), columns=[f"f{i}" for i in range(30)])
    ref["label"] = (ref["f0"] > 0).astype(int)
    ref.to_parquet(work / "reference.parquet")
    t0 = time.perf_counter()
    write_log(work / "predictions.jsonl", args.rows)
    size = (work / "predictions.jsonl").stat().st_size
    print(f"log: {args.rows:,} rows x 30 features, {size / 2 ** 20:.0f} MiB "
          f"(written in {time.perf_counter() - t0:.1f} s)")

    cli = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        proc = subprocess.run([MLNB, "monitor", "--reference", "reference.parquet", "--json", "--no-mlflow"], cwd=work,
                              capture_output=True, text=True)
        cli.append(time.perf_counter() - start)
        if proc.returncode not in (0, 1):
            raise SystemExit(proc.stderr)
    print(f"mlnb monitor (CLI, end to end), median of {args.rounds}: {statistics.median(cli):.2f} s (goal < 5 s); "
          f"exit {proc.returncode}")

    from mlnb.core.drift import MonitorConfig, column_drift
    from mlnb.services.monitor_log import read_window

    config = MonitorConfig()
    scores = {}
    for label, cap in (("sampled (monitor.max_rows 100,000)", config.max_rows), ("every row", 10 ** 9)):
        start = time.perf_counter()
        window = read_window([work / "predictions.jsonl"], max_rows=cap)
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        scores[cap] = {c: column_drift(ref[c].to_numpy(), window.inputs[c].to_numpy(), config)
                       for c in window.inputs.columns}
        score_s = time.perf_counter() - start
        flagged = [c for c, s in scores[cap].items() if s["drifted"]]
        print(f"in process, {label}: {len(window.inputs):,} rows read in {read_s:.2f} s, 30 features scored in "
              f"{score_s:.2f} s; flagged {flagged}")
    sample, full = scores[config.max_rows], scores[10 ** 9]
    for key in ("psi", "wasserstein", "ks"):
        diff = max(abs(sample[c][key] - full[c][key]) for c in sample)
        print(f"largest difference sample vs every row, {key}: {diff:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
