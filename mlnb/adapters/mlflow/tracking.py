"""MLflow runs for builds and tasks.

One *build* run per ``mlnb build`` (tag ``mlnb.kind=build``) and one nested *task*
run per executed task (tag ``mlnb.kind=task``, ``mlnb.task=<name>``). Task notebooks
open their own run through :func:`task_run`; when they run under ``mlnb build`` the
environment variable ``MLNB_BUILD_RUN_ID`` makes that run a child of the build run.
Under plain ``ploomber build`` each task run stands alone. Build runs are named after the commit
and the params that differ from it (``a1b2c3d C=0.5``), task runs after their task.

A debug notebook (``mlnb debug``) sets ``MLNB_DEBUG_NOTEBOOK``: its task runs then go to a
throwaway store (``.mlnb/debug/mlflow.db``), never to the project's experiment.

Tracking URI: ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<root>/mlflow.db``
with artifacts in ``<root>/mlartifacts``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlnb.core import settings
from mlnb.errors import TrackingError

BUILD_RUN_ENV = "MLNB_BUILD_RUN_ID"
DEBUG_ENV = "MLNB_DEBUG_NOTEBOOK"
# What MLflow 3's UI reads to open an experiment on its training runs rather than the GenAI overview.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}
TELEMETRY_OFF = {
    "PLOOMBER_STATS_ENABLED": "false",
    "PLOOMBER_VERSION_CHECK_DISABLED": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
}


def telemetry_off() -> None:
    """Turn off Ploomber, MLflow and DVC telemetry for this process and its children."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


def tracking_uri(root: str | Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def use_store(root: str | Path) -> None:
    """Point MLflow at the project's store (:func:`tracking_uri`), without touching experiments."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(root))


def current_uri() -> str:
    """The tracking URI MLflow uses now in this process."""
    import mlflow

    return mlflow.get_tracking_uri()


def configure(root: str | Path, experiment: str) -> str:
    """Point MLflow at the project's store and experiment; return the experiment id."""
    telemetry_off()
    import mlflow

    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    try:
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            location = None
            if uri.startswith("sqlite:"):
                location = (Path(root).resolve() / "mlartifacts").as_uri()
            exp_id = mlflow.create_experiment(experiment, artifact_location=location, tags=EXPERIMENT_KIND)
        else:
            exp_id = exp.experiment_id
            if "mlflow.experimentKind" not in exp.tags:  # made before mlnb set it (or by hand): once
                mlflow.MlflowClient().set_experiment_tag(exp_id, *next(iter(EXPERIMENT_KIND.items())))
    except Exception as exc:  # MLflow raises many types for an unreachable store
        raise TrackingError(f"MLflow store {uri}: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def owner_tags(root: str | Path) -> dict[str, str]:
    """Which machine and project directory a build run belongs to (see :func:`close_orphaned_builds`)."""
    import socket

    return {"mlnb.host": socket.gethostname(), "mlnb.root": str(Path(root).resolve())}


def close_orphaned_builds(experiment_id: str, root: str | Path) -> list[str]:
    """Mark KILLED the build runs (and their task runs) of this machine and project that are still
    RUNNING: the caller holds the project's build lock, so their process died (``kill -9``, a power
    cut) before it could end them. Returns their ids."""
    import mlflow

    client = mlflow.MlflowClient()
    owner = owner_tags(root)
    filt = "tags.`mlnb.kind` = 'build' and attributes.status = 'RUNNING'"
    closed = []
    for run in client.search_runs([experiment_id], filt, max_results=200):
        if any(run.data.tags.get(k) != v for k, v in owner.items()):  # another machine's or directory's build
            continue
        children = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{run.info.run_id}' and "
                                      "attributes.status = 'RUNNING'", max_results=1000)
        for child in children:
            client.set_terminated(child.info.run_id, "KILLED")
        client.set_tag(run.info.run_id, "mlnb.status", "killed")
        client.set_terminated(run.info.run_id, "KILLED")
        closed.append(run.info.run_id)
    return closed


def git_commit(root: str | Path) -> str:
    """Current commit hash (with ``-dirty`` suffix when tracked files other than ``dvc.lock`` have
    uncommitted changes), or ``unknown``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True,
                             timeout=10).stdout.strip()
        # dvc.lock records the previous build's outputs, not an input of this one
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!dvc.lock"],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha


def short_commit(commit: str) -> str:
    """``a1b2c3d``, with ``*`` when the build ran with uncommitted changes to tracked files."""
    if not commit or commit == "unknown":
        return commit or "-"
    return commit[:7] + ("*" if commit.endswith("-dirty") else "")


def changed_params(root: Path, env_path: Path, env: dict[str, Any]) -> dict[str, Any]:
    """The params (flattened keys) in ``env`` that differ from ``env_path`` as committed at HEAD
    (overrides and uncommitted edits alike); all of them when the file is not in git."""
    import yaml

    def flat(d: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(d, dict):
            return {prefix.rstrip("."): d} if prefix else {}
        return {k: v for key, value in d.items() for k, v in flat(value, f"{prefix}{key}.").items()}

    try:
        rel = env_path.resolve().relative_to(root.resolve()).as_posix()
        shown = subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=root, capture_output=True, text=True, timeout=10)
        committed = yaml.safe_load(shown.stdout) if shown.returncode == 0 else {}
    except (OSError, ValueError, subprocess.SubprocessError, yaml.YAMLError):
        committed = {}
    before, now = flat(committed or {}), flat(env)
    return {k: v for k, v in now.items() if before.get(k, object()) != v}


def build_run_name(commit: str, changed: dict[str, Any], env_file: str | None = None, limit: int = 4) -> str:
    """``a1b2c3d C=0.5``: the short commit, the env file when not the default, then the changed
    params (by their last key, or the full key when two share it)."""
    leaves = [k.rsplit(".", 1)[-1] for k in changed]
    items = [f"{leaf if leaves.count(leaf) == 1 else key}={value}" for key, leaf, value in
             zip(changed, leaves, changed.values(), strict=True)]
    more = [f"+{len(items) - limit} more"] if len(items) > limit else []
    parts = [short_commit(commit) if commit != "unknown" else "build", *([env_file] if env_file else []),
             *items[:limit], *more]
    return " ".join(parts)[:200]


@contextlib.contextmanager
def task_run(task: str, root: str | Path, experiment: str) -> Iterator[Any]:
    """Open the MLflow run of one task (a child of the build run under ``mlnb build``; in a debug
    notebook, a run in the throwaway debug store)."""
    if settings.get(DEBUG_ENV):
        with _debug_run(task, Path(root), experiment) as run:
            yield run
        return
    configure(root, experiment)
    import mlflow

    parent = settings.get(BUILD_RUN_ENV)
    tags = {"mlnb.kind": "task", "mlnb.task": task, "mlnb.git_commit": git_commit(root)}
    with mlflow.start_run(run_name=task, parent_run_id=parent, tags=tags) as run:
        yield run


@contextlib.contextmanager
def _debug_run(task: str, root: Path, experiment: str) -> Iterator[Any]:
    """The run of a task re-run in its debug notebook: in ``.mlnb/debug/mlflow.db``, so the project's
    experiment never gets a stray run (reads elsewhere in the notebook still see the project's store)."""
    telemetry_off()
    import mlflow

    store = settings.state_dir(root.resolve()) / "debug"
    store.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    print(f"mlnb debug: this MLflow run goes to {store / 'mlflow.db'}, "
          f"not to the project's experiment")
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    quiet = logging.getLogger("mlflow.store.db.utils")  # "Creating initial MLflow database tables..."
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        client = mlflow.MlflowClient(uri)
        exp = client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(
            experiment, artifact_location=(store / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=exp_id, run_name=f"{task} (debug)", tags={"mlnb.kind": "debug"}) as run:
            yield run
    finally:
        quiet.setLevel(level)
        mlflow.set_tracking_uri(before)


def ui_url(run_id: str) -> str | None:
    """The run's page in the MLflow UI when the store is an MLflow server (``MLFLOW_TRACKING_URI``
    http/https), in the UI's "Model training" view (MLflow 3.17's UI otherwise opens its GenAI view,
    whatever the experiment's kind); None for a local store."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        return None
    from mlflow.tracking import MlflowClient

    experiment_id = MlflowClient(uri).get_run(run_id).info.experiment_id
    return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"


def task_runs(build_run_id: str, experiment_id: str) -> dict[str, str]:
    """Task name -> id of the child run its notebook opened under ``build_run_id`` (one query)."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{build_run_id}'",
                                      max_results=5000)
    return {r.data.tags["mlnb.task"]: r.info.run_id for r in reversed(runs) if "mlnb.task" in r.data.tags}


NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")  # MLflow's "no such thing"


def version_by_alias(client: Any, model_name: str, alias: str) -> Any | None:
    """The registered ``ModelVersion`` behind ``alias``, or ``None`` when there is none."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException as exc:
        if exc.error_code in NOT_FOUND:
            return None
        raise TrackingError(f"MLflow registry: model {model_name!r} alias {alias!r}: {exc.message}") from None


def champion(model_name: str, alias: str = "champion") -> dict[str, Any] | None:
    """The registered version behind ``alias``, or ``None`` when there is none."""
    from mlflow.tracking import MlflowClient

    mv = version_by_alias(MlflowClient(), model_name, alias)
    if mv is None:
        return None
    return {"name": model_name, "version": str(mv.version), "run_id": mv.run_id,
            "model_uri": f"models:/{model_name}@{alias}"}


VERDICT_TAG = "mlnb.gate.verdict"
VERDICTS = ("promotable", "not_promotable", "failed")


def gate_verdict(tags: dict[str, str]) -> str:
    """The gate's verdict on a build: ``promotable``, ``not_promotable`` (a healthy build the gate
    turned down), ``failed`` (the gate could not pass: an older build's failed gate, or a crash) or
    ``-`` (no gate result). The ``mlnb.gate.verdict`` tag wins over the older ``mlnb.gate_passed``."""
    verdict = tags.get(VERDICT_TAG, "")
    if verdict in VERDICTS:
        return verdict
    return {"true": "promotable", "false": "failed"}.get(tags.get("mlnb.gate_passed", ""), "-")


def build_summary(run: Any) -> dict[str, Any]:
    """What one build run says about itself: status, commit, gate verdict, metrics (all of them, sorted)."""
    tags = run.data.tags
    verdict = gate_verdict(tags)
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name or "",
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "status": tags.get("mlnb.status", run.info.status.lower()),
        "git_commit": tags.get("mlnb.git_commit", ""),
        "gate": {"promotable": "passed", "-": "-"}.get(verdict, "failed"),  # older clients read this one
        "verdict": verdict,
        "gate_reason": tags.get("mlnb.gate_reason", ""),
        "failed_task": tags.get("mlnb.failed_task", ""),
        "failure": tags.get("mlnb.failure", ""),  # "cell 5 ('first line'): ValueError: ..."
        "failure_task": tags.get("mlnb.failure_task", ""),
        "debuggable": tags.get("mlnb.debuggable") == "true",  # its failure is the task's current one
        "metrics": {k: float(v) for k, v in sorted(run.data.metrics.items())},
    }


def list_builds(experiment_id: str, max_results: int = 20, client: Any = None) -> list[Any]:
    """Recent build runs (MLflow ``Run`` objects) of an experiment, newest first (call
    :func:`configure` first); :func:`build_summary` describes each."""
    from mlflow.tracking import MlflowClient

    return (client or MlflowClient()).search_runs(
        [experiment_id], filter_string="tags.`mlnb.kind` = 'build'", order_by=["attributes.start_time DESC"],
        max_results=max(1, min(max_results, 500)))
