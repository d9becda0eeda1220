"""``mlnb sweep``: a grid of parameter values, one build per point, the tasks upstream of the swept keys shared.

    mlnb sweep -p train.C=0.1,1,10 -p train.model=logistic_regression,random_forest [-j N] [--executor dask ...]

Each point is a whole ``mlnb build`` (the installed CLI, so a point is exactly what a user's build with those
``-p`` would be) in its own workspace under ``.mlnb/sweeps/<id>/``: a copy of the project's sources and
DVC-tracked data, plus copies of the *shared* tasks' products (the tasks whose parameters use no swept key,
nor any task upstream of one that does) with their up-to-date records. The first point builds what the shared
tasks need (nothing when the project's own products are fresh); every other point starts from its products,
so Ploomber skips them and only the swept part runs. Points after the first run ``jobs`` at a time.

MLflow: one run of kind ``sweep`` (the grid, the table as ``sweep.json``, the best point's figures) is the
parent of every point's build run, in the project's store or the tracking server; each build run is an
ordinary build run (gate verdict and all), so ``mlnb promote RUN_ID`` takes any point.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlnb.adapters.mlflow import runs as mlflow_runs
from mlnb.adapters.mlflow import tracking
from mlnb.core import settings
from mlnb.core.gate import GateConfig, verdict_of
from mlnb.core.metrics import METRICS
from mlnb.core.project import Project
from mlnb.errors import EnvError
from mlnb.services import bundle as bundles

SWEEP_RUN_ENV = "MLNB_SWEEP_RUN_ID"
SOURCE_ENV = "MLNB_SWEEP_SOURCE"
MAX_POINTS = 256
Progress = Callable[[str, "Point"], None]


@dataclass
class Point:
    index: int
    values: dict[str, str]  # swept key -> value, as given
    workspace: Path
    ok: bool = False
    run_id: str | None = None
    elapsed: float = 0.0
    metric: float | None = None
    verdict: str | None = None
    ran: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items())


@dataclass
class SweepResult:
    sweep_id: str
    run_id: str
    metric: str
    greater_is_better: bool
    shared: list[str]
    points: list[Point]

    @property
    def ranked(self) -> list[Point]:
        sign = -1.0 if self.greater_is_better else 1.0
        scored = sorted((p for p in self.points if p.metric is not None), key=lambda p: sign * (p.metric or 0.0))
        return scored + [p for p in self.points if p.metric is None]

    @property
    def best(self) -> Point | None:
        ranked = [p for p in self.ranked if p.ok and p.metric is not None]
        return ranked[0] if ranked else None


def parse_grid(params: tuple[str, ...]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """``-p key=a,b,c`` (swept) and ``-p key=value`` (fixed for every point); one line on a bad one."""
    grid: list[tuple[str, list[str]]] = []
    fixed: list[str] = []
    for text in params:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise EnvError(f"-p {text!r}: expected KEY=VALUE or KEY=V1,V2,..., e.g. -p train.C=0.1,1,10")
        values = [v.strip() for v in _split(raw)]
        if len(values) > 1:
            if any(not v for v in values) or len(set(values)) != len(values):
                raise EnvError(f"-p {text!r}: empty or repeated values")
            if any(k == key for k, _ in grid):
                raise EnvError(f"-p {key}: given twice")
            grid.append((key, values))
        else:
            fixed.append(text)
    if not grid:
        raise EnvError("mlnb sweep: no swept key: give at least one -p KEY=V1,V2,... (a comma between values)")
    size = 1
    for _, values in grid:
        size *= len(values)
    if size > MAX_POINTS:
        raise EnvError(f"mlnb sweep: the grid has {size} points (at most {MAX_POINTS})")
    return grid, fixed


def _split(raw: str) -> list[str]:
    """Split on commas outside brackets and quotes (``[1,2],[3]`` is two values)."""
    parts, depth, quote, cur = [], 0, "", ""
    for ch in raw:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        cur += ch
    return [*parts, cur]


def shared_tasks(project: Project, keys: list[str]) -> list[str]:
    """Tasks whose parameters use none of ``keys`` and that are upstream of none that does."""
    spec = project.spec

    def uses(task_keys: tuple[str, ...]) -> bool:
        return any(k == s or k.startswith(f"{s}.") or s.startswith(f"{k}.") for k in task_keys for s in keys)

    swept = {n for n, t in spec.tasks.items() if uses(t.env_keys)}
    for name in list(swept):
        swept.update(spec.downstream(name))
    return [n for n in spec.tasks if n not in swept]


def run_sweep(project: Project, params: tuple[str, ...], jobs: int = 1, build_args: tuple[str, ...] = (),
              env: dict[str, str] | None = None, progress: Progress | None = None) -> SweepResult:
    grid, fixed = parse_grid(params)
    _ = project.env, project.spec  # the env and spec read (one line on a problem) before anything runs
    keys = [k for k, _ in grid]
    shared = shared_tasks(project, keys)
    config = GateConfig.from_env(project.env.get("gate", {})) if isinstance(project.env.get("gate"), dict) \
        else GateConfig()
    better = config.greater_is_better if config.greater_is_better is not None \
        else METRICS[config.metric].greater_is_better
    sweep_id = uuid.uuid4().hex[:8]
    base = settings.state_dir(project.root) / "sweeps" / sweep_id
    points = [Point(i, dict(zip(keys, combo, strict=True)), base / f"p{i + 1}")
              for i, combo in enumerate(itertools.product(*(values for _, values in grid)))]
    tracking.configure(project.root, project.experiment)
    uri = tracking.tracking_uri(project.root)
    say = progress or (lambda event, point: None)
    with mlflow_runs.start_run(f"sweep {' x '.join(f'{k}={len(v)}' for k, v in grid)}",
                               {"mlnb.kind": "sweep", "mlnb.sweep": sweep_id}) as run:
        run.log_params({"grid": json.dumps(dict(grid))[:500], "fixed": " ".join(fixed)[:500],
                        "points": str(len(points)), "shared_tasks": ",".join(shared)[:500]})
        child_env = {**os.environ, **(env or {}), "MLFLOW_TRACKING_URI": uri, SWEEP_RUN_ENV: run.run_id,
                     SOURCE_ENV: str(project.root), "MLNB_STATE_DIR": ".mlnb"}
        sources = bundles.source_files(project)

        def one(point: Point) -> Point:
            _workspace(project, point.workspace, sources, shared, base / "p1" if point.index else None)
            say("start", point)
            _build(point, [*fixed, *(f"{k}={v}" for k, v in point.values.items())], build_args, child_env,
                   project.entry_point)
            _read_outcome(point, config.metric)
            say("done", point)
            return point

        one(points[0])  # builds what the shared tasks need; the others copy its products
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(one, points[1:]))
        result = SweepResult(sweep_id, run.run_id, config.metric, better, shared, points)
        run.log_dict([{**asdict(p), "workspace": str(p.workspace)} for p in result.ranked], "sweep.json")
        if result.best is not None and result.best.metric is not None:
            run.log_metrics({f"best_{config.metric}": result.best.metric})
            run.set_tags({"mlnb.sweep.best_run": result.best.run_id or "", "mlnb.sweep.best": result.best.label})
    return result


def _workspace(project: Project, dest: Path, sources: list[str], shared: list[str], first: Path | None) -> None:
    """Sources, DVC-tracked data, and the shared tasks' products with their up-to-date records (from the
    first point's workspace when given, else from the project)."""
    root = project.root
    for name in sources:
        if name.split("/")[0] in (".dvc", "dvc.yaml", "dvc.lock"):
            continue  # a point is not a DVC repository (its outputs are the sweep's, not the project's)
        _copy(root / name, dest / name)
    for path in bundles.dvc_data(root):
        if path.exists() and path.is_relative_to(root):
            _copy(path, dest / path.relative_to(root))
    origin = first or root
    for name in shared:
        for product in project.spec.tasks[name].products.values():
            rel = product.relative_to(project.spec.root) if product.is_relative_to(project.spec.root) else None
            if rel is None:
                continue
            for item in (rel, rel.with_name(f".{rel.name}.metadata")):
                if (origin / item).exists():
                    _copy(origin / item, dest / item)


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        dst.unlink(missing_ok=True)
        dst.symlink_to(os.readlink(src))
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, dst)  # a copy, never a link: a point rewriting its own file must not touch another's


def _build(point: Point, overrides: list[str], build_args: tuple[str, ...], env: dict[str, str],
           entry_point: str | None) -> None:
    cmd = [sys.executable, "-m", "mlnb.cli", "build", "--no-dvc", *build_args,
           *(["--entry-point", entry_point] if entry_point else [])]
    for text in overrides:
        cmd += ["-p", text]
    start = time.perf_counter()
    with open(point.workspace / "build.log", "wb") as log:
        proc = subprocess.run(cmd, cwd=point.workspace, env=env, stdout=log, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
    point.elapsed = time.perf_counter() - start
    point.ok = proc.returncode == 0
    if not point.ok:
        tail = (point.workspace / "build.log").read_text(errors="replace").strip().splitlines()
        point.error = next((ln for ln in reversed(tail) if ln.startswith(("FAILED", "mlnb: error", "gate:"))),
                           tail[-1] if tail else f"exit {proc.returncode}")


def _read_outcome(point: Point, metric: str) -> None:
    summary = point.workspace / "products" / "last_build.json"
    if not summary.exists():
        return
    data = json.loads(summary.read_text())
    point.run_id = data.get("run_id")
    point.ran = [t["task"] for t in data.get("tasks", []) if t.get("status") in ("executed", "failed")]
    if point.run_id:
        run = mlflow_runs.get_run(mlflow_runs.client(), point.run_id)
        if run is not None:
            point.metric = run.data.metrics.get(metric)
            point.verdict = verdict_of(run.data.tags)


def table(result: SweepResult) -> tuple[list[list[str]], list[str]]:
    """Rows (best first) and header for the CLI."""
    best = result.best
    keys = list(result.points[0].values) if result.points else []
    rows = []
    for p in result.ranked:
        rows.append(["*" if p is best else "", *p.values.values(),
                     f"{p.metric:.4f}" if p.metric is not None else "-",
                     (p.verdict or ("failed" if not p.ok else "-")).replace("_", " "), p.run_id or "-",
                     f"{p.elapsed:.1f}"])
    return rows, ["", *keys, result.metric, "verdict", "build run", "seconds"]
