"""`mlnb build --executor dask` on a real 2-worker cluster vs the local fork engine, and `mlnb sweep` vs
separate builds, side by side in one run (A B A B ...).

1. The example pipeline, `--force --no-dvc`: local fork engine vs the cluster (a chain: no parallelism to win,
   so this is the exchange's cost).
2. Six independent tasks that sleep `--seconds` (2 s): local `-j 1` (back to back), local `-j 2`, cluster
   (2 workers). Then 4 and 16 empty tasks, local `-j 2` vs the cluster: the slope is the dispatch overhead per
   task above the local engine (goal <= 50 ms), what is left the cost per build.
3. A 6-point sweep over the example's `train.C` vs the same six `mlnb build -p train.C=...` one after another.

The cluster is one `dask scheduler` and two `dask worker --nthreads 1` processes on 127.0.0.1, each worker
in its own directory, and a real `mlflow server` (every run here, local or not, tracks to it); products go
through a local-directory DVC remote. Every build is a fresh `mlnb` process.

Usage: .venv/bin/python benchmarks/cluster.py [--rounds 2] [--seconds 2] [--skip-sweep]
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

from tests.cluster_fixtures import start_cluster  # noqa: E402
from tests.conftest import copy_project, git_init, write_notebook  # noqa: E402

MLNB = str(Path(sys.executable).with_name("mlnb"))
ENV = {**os.environ, "PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "true",
       "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1"}


def timed(cwd: Path, *args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run([MLNB, *args], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"mlnb {' '.join(args)} failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def independent(base: Path, n: int, seconds: float, name: str | None = None) -> Path:
    root = base / (name or f"fan-{seconds:g}")
    lines = ["tasks:"]
    for i in range(n):
        write_notebook(root / f"t{i}.ipynb", [
            ("params", "upstream = None\nproduct = None"),
            ("code", f"import time\nfrom pathlib import Path\ntime.sleep({seconds})\n"
                     "Path(product['data']).write_text('ok')"),
        ])
        lines.append(f"  - source: t{i}.ipynb\n    product: {{nb: out/t{i}.ipynb, data: out/t{i}.txt}}")
    (root / "pipeline.yaml").write_text("\n".join(lines) + "\n")
    (root / "env.yaml").write_text("mlflow:\n  experiment: fan\n")
    git_init(root)
    return root


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--skip-sweep", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mlnb-bench-cluster-"))
    started = time.perf_counter()
    cluster = start_cluster(base / "cluster")
    print(f"cluster up in {time.perf_counter() - started:.1f} s: {cluster.scheduler}, tracking {cluster.tracking}")
    remote = base / "remote"
    remote.mkdir()
    env = {**ENV, "MLFLOW_TRACKING_URI": cluster.tracking, "MLNB_DVC_REMOTE": str(remote)}
    dask = ["--executor", "dask", "--scheduler", cluster.scheduler]
    try:
        example = copy_project(base / "example")
        timed(example, "build", "--force", "--no-dvc", env=env)  # warm: kernels, imports, the store
        local, remote_t = [], []
        for _ in range(args.rounds):
            local.append(timed(example, "build", "--force", "--no-dvc", env=env))
            remote_t.append(timed(example, "build", "--force", "--no-dvc", *dask, env=env))
        print(f"\n1. example pipeline (--force --no-dvc), median of {args.rounds}:")
        print(f"   local fork engine {median(local):6.2f} s   cluster {median(remote_t):6.2f} s   "
              f"ratio {median(remote_t) / median(local):.2f}x")

        print("\n2. independent tasks:")
        fan = independent(base, 6, args.seconds)
        timed(fan, "build", "--force", "--no-dvc", *dask, env=env)  # warm: each worker unpacks, imports
        one, two, clu = [], [], []
        for _ in range(args.rounds):
            one.append(timed(fan, "build", "--force", "--no-dvc", "-j", "1", env=env))
            two.append(timed(fan, "build", "--force", "--no-dvc", "-j", "2", env=env))
            clu.append(timed(fan, "build", "--force", "--no-dvc", *dask, env=env))
        print(f"   six that sleep {args.seconds:g} s: local -j 1 {median(one):6.2f} s   "
              f"local -j 2 {median(two):6.2f} s   cluster (2 workers) {median(clu):6.2f} s")
        # empty tasks, 4 then 16 on two slots: the slope is the cost per task, the rest the cost per build
        sizes, local_s, cluster_s = (4, 16), {}, {}
        for n in sizes:
            fan = independent(base, n, 0.0, f"empty-{n}")
            timed(fan, "build", "--force", "--no-dvc", *dask, env=env)
            two, clu = [], []
            for _ in range(args.rounds + 1):
                two.append(timed(fan, "build", "--force", "--no-dvc", "-j", "2", env=env))
                clu.append(timed(fan, "build", "--force", "--no-dvc", *dask, env=env))
            local_s[n], cluster_s[n] = median(two), median(clu)
            print(f"   {n:2} empty tasks: local -j 2 {local_s[n]:6.2f} s   cluster {cluster_s[n]:6.2f} s")
        waves = (sizes[1] - sizes[0]) / 2
        per_local = (local_s[sizes[1]] - local_s[sizes[0]]) / waves * 1000
        per_cluster = (cluster_s[sizes[1]] - cluster_s[sizes[0]]) / waves * 1000
        print(f"   per task (on a slot): local {per_local:.0f} ms, cluster {per_cluster:.0f} ms: dispatch overhead "
              f"{per_cluster - per_local:.0f} ms per task (goal <= 50 ms); per build "
              f"{(cluster_s[sizes[0]] - local_s[sizes[0]]) - 2 * (per_cluster - per_local) / 1000:.2f} s "
              "(connect, version check, sources, warm-up)")

        if not args.skip_sweep:
            values = ["0.25", "0.5", "1", "2", "4", "8"]
            sweep_dir = copy_project(base / "sweep")
            t_sweep = timed(sweep_dir, "sweep", "-p", f"train.C={','.join(values)}", env=env)
            builds = copy_project(base / "builds")
            t_builds = 0.0
            for value in values:
                t_builds += timed(builds, "build", "--no-dvc", "-p", f"train.C={value}", env=env)
            t_sweep2 = timed(copy_project(base / "sweep2"), "sweep", "-p", f"train.C={','.join(values)}", "-j", "2",
                             env=env)
            print(f"\n3. six points over train.C: sweep {t_sweep:6.2f} s (-j 2: {t_sweep2:6.2f} s)   "
                  f"six builds one after another {t_builds:6.2f} s   ratio {t_builds / t_sweep:.2f}x")
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
