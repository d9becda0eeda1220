"""The nbval workspace: a copy of the project, built with the CI parameters, where blessed
reference notebooks are (re-)executed. It lives in ``.mlnb/nbval/workspace`` (git-ignored) and is
incremental: Ploomber re-runs only what changed since the last check (everything, when a file
other than a notebook or an env file changed, e.g. a helper module Ploomber does not watch).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlnb.adapters.mlflow.tracking import TELEMETRY_OFF
from mlnb.adapters.nbval.reference import OUT_DIR, WORKSPACE_ENV
from mlnb.core import settings
from mlnb.core.io import atomic_write
from mlnb.errors import RegressionError, UserInputError

CI_ENV = "env.ci.yaml"
WORKSPACE = Path("nbval") / "workspace"  # under the state directory (MLNB_STATE_DIR)
KEEP = {"products", "mlflow.db", "mlartifacts", ".fingerprint"}  # built state that survives a re-sync
IGNORE = {".git", ".mlnb", ".venv", "venv", ".dvc", "dvc.lock", "products", "reports", "mlruns", "mlartifacts",
          "mlflow.db", "node_modules", "tests", "__pycache__", ".ipynb_checkpoints", ".pytest_cache",
          ".ruff_cache", "build", "dist", "extension", "benchmarks", "examples"}
FINGERPRINT_EXEMPT = ("notebooks/", "env", "params.yaml", "pipeline.yaml")  # Ploomber watches these itself


def _copy(root: Path, ws: Path) -> str:
    """Mirror the project's sources into ``ws``; return a fingerprint of what Ploomber cannot see."""
    for entry in ws.iterdir() if ws.exists() else ():
        if entry.name not in KEEP:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    ws.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    state = settings.state_dir(root)
    for entry in sorted(root.iterdir()):
        if entry.name in IGNORE or entry.name.endswith(".egg-info") or state.is_relative_to(entry):
            continue  # (the state directory holds the workspace itself)
        target = ws / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.metadata"))
        else:
            shutil.copy2(entry, target, follow_symlinks=False)
    for path in sorted(p for p in ws.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(ws).as_posix()
        if rel.split("/")[0] in KEEP or rel.startswith(FINGERPRINT_EXEMPT):
            continue
        digest.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def execution_env(ws: Path) -> dict[str, str]:
    """Environment of a reference execution: the workspace, and a scratch MLflow store so that
    every execution sees the same registry state (model version 1, no champion)."""
    return {**TELEMETRY_OFF, WORKSPACE_ENV: str(ws), "MLNB_PROJECT_ROOT": str(ws),
            "MLFLOW_TRACKING_URI": f"sqlite:///{ws / OUT_DIR / 'mlflow.db'}",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}


@dataclass(frozen=True)
class Workspace:
    path: Path
    failed: dict[str, str]  # task -> why it has no outputs in the workspace (its build failed, or upstream's)


def prepare(root: Path, env_file: str = CI_ENV) -> Workspace:
    """Copy the project into the workspace and build it with ``env_file``; reset the scratch area.

    A task that fails in this build does not stop the check: it is reported, with its downstream,
    as the failure of those notebooks, and the others are still compared."""
    if not (root / env_file).is_file():
        raise UserInputError(f"{env_file}: the CI parameter set for nbval is missing (copy params.yaml and make "
                             f"it small and fast: fewer estimators, fixed seeds)")
    ws = settings.state_dir(root) / WORKSPACE
    fingerprint = _copy(root, ws)
    stamp = ws / ".fingerprint"
    force = not stamp.exists() or stamp.read_text() != fingerprint
    env = {k: v for k, v in os.environ.items() if k not in ("MLNB_DVC_REMOTE", WORKSPACE_ENV, "MLNB_PROJECT_ROOT",
                                                           "MLNB_BUILD_RUN_ID")}
    env.update(TELEMETRY_OFF)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{ws / 'mlflow.db'}"  # never the user's server
    (ws / "products" / "last_build.json").unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "mlnb", "build", "--env-file", env_file, "--no-dvc", *(["--force"] if force else [])]
    proc = subprocess.run(cmd, cwd=ws, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    failed = _failed_tasks(ws) if proc.returncode == 1 else {}
    if proc.returncode != 0 and not failed:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        why = next((ln for ln in reversed(lines) if ln.startswith("mlnb: error:")), lines[-1] if lines else "")
        stamp.unlink(missing_ok=True)
        raise RegressionError(f"nbval workspace {ws}: building the pipeline with {env_file} failed: "
                              f"{why.removeprefix('mlnb: error: ')}")
    with atomic_write(stamp, encoding="utf-8") as fh:
        fh.write(fingerprint)
    scratch = ws / OUT_DIR
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    # create the scratch store's tables now, so no notebook's output depends on being the first to use it
    init = subprocess.run([sys.executable, "-c", "import mlflow; mlflow.MlflowClient().search_experiments()"],
                          cwd=ws, env={**env, **execution_env(ws)}, capture_output=True, text=True)
    if init.returncode != 0:
        raise RegressionError(f"nbval workspace {ws}: cannot create the scratch MLflow store: "
                              f"{(init.stderr.strip().splitlines() or ['?'])[-1]}")
    return Workspace(ws, failed)


def _failed_tasks(ws: Path) -> dict[str, str]:
    """Tasks the workspace build could not make, from its ``last_build.json``."""
    try:
        rows = json.loads((ws / "products" / "last_build.json").read_text(encoding="utf-8"))["tasks"]
    except (OSError, ValueError, KeyError):
        return {}
    failed = {r["task"]: f"task {r['task']} failed in the nbval workspace build ({CI_ENV}): {r['failure']}"
              for r in rows if r.get("status") == "failed"}
    first = next(iter(failed), None)
    for row in rows:
        if row.get("status") == "not run" and first:
            failed[row["task"]] = f"task {row['task']} not built in the nbval workspace: upstream {first} failed"
    return failed
