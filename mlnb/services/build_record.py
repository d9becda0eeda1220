"""What a build writes about its tasks: each task's MLflow child run, the task table, ``last_build.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlnb.adapters.mlflow import runs as mlflow_runs
from mlnb.adapters.ploomber import pipeline
from mlnb.core.io import atomic_write
from mlnb.core.outcomes import TaskStatus


def record_task(client: Any, build_run_id: str, experiment_id: str, outcome: pipeline.TaskOutcome,
                 existing: dict[str, str], placed: tuple[str, dict[str, float]] | None = None) -> None:
    """Complete (or create) the task's child run: status, duration, executed notebook."""
    run_id = existing.get(outcome.name)
    if run_id is None:
        child = client.create_run(experiment_id, run_name=outcome.name, tags={
            "mlflow.parentRunId": build_run_id, "mlnb.kind": "task", "mlnb.task": outcome.name})
        run_id = child.info.run_id
    tags = {"mlnb.status": outcome.status.value}
    metrics = {"duration_s": round(outcome.elapsed, 3)}
    if placed:  # host:pid of the cluster worker that ran it, and its seconds there (fetch, render, run, push)
        tags["mlnb.worker"] = placed[0]
        metrics.update({f"worker_{k}_s": v for k, v in placed[1].items()})
    if outcome.failure:
        tags["mlnb.failure"] = outcome.failure.describe()[:5000]
    # one store transaction, not one per value
    mlflow_runs.log_batch(client, run_id, metrics=metrics, tags=tags)
    if outcome.notebook and outcome.notebook.exists():
        client.log_artifact(run_id, str(outcome.notebook), "notebooks")
    client.set_terminated(run_id, status="FINISHED" if outcome.status is TaskStatus.EXECUTED else "FAILED")


def task_rows(outcomes: list[pipeline.TaskOutcome]) -> list[dict[str, Any]]:
    return [{"task": o.name, "status": o.status.value, "elapsed_s": round(o.elapsed, 2),
             "failure": o.failure.describe() if o.failure else None} for o in outcomes]


def write_last_build(root: Path, result: Any) -> None:
    """``products/last_build.json``: the build run, whether it ran and passed, each task's row (a BuildResult)."""
    data = {"run_id": result.run_id, "ran": result.ran, "ok": result.ok, "elapsed_s": round(result.elapsed, 2),
            "tasks": task_rows(result.outcomes)}
    with atomic_write(root / "products" / "last_build.json", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
