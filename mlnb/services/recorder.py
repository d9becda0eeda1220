"""One build's failure handling for the fork engine (part of :mod:`mlnb.services.debug`'s life cycle): the
kernel options of each task (where to snapshot, what to resume from), the failure manifests of the tasks
that failed, and the earlier failed build runs a build replaced (no Debug for them any more)."""

from __future__ import annotations

from typing import Any

from mlnb.adapters.ploomber import pipeline
from mlnb.core.outcomes import TaskStatus
from mlnb.core.spec import PipelineSpec
from mlnb.engine import checkpoint
from mlnb.services.debug import (
    DEBUGGABLE_TAG,
    build_of_failure,
    clear,
    kernel_env,
    record_failure,
    resume_plan,
    snapshot_dir,
)


class FailureRecorder:
    """One build's failure handling for the fork engine: each task's kernel options (where to
    snapshot; what to resume from), then the manifests of the tasks that failed."""

    def __init__(self, spec: PipelineSpec, resume: bool, limit_mb: float) -> None:
        self.spec, self.limit_mb = spec, limit_mb
        self.plans = {n: p for n in spec.tasks if resume and (p := resume_plan(spec, n)) is not None}
        self.failed_in = {n: build_of_failure(spec.root, n) for n in spec.tasks}  # before options() clears them
        self.retired: list[str] = []  # build runs whose failure this build replaced

    def options(self, name: str) -> Any:
        from mlnb.engine import kernel

        env = kernel_env(self.spec, name, self.limit_mb)
        resume = self.resume(name)
        if resume is not None:
            env[checkpoint.RESUME_ENV] = str(snapshot_dir(self.spec.root, name))
            env[checkpoint.COUNT_ENV] = str(resume.pop("count"))
            return kernel.task_options(env, resume)
        return kernel.task_options(env)

    def resume(self, name: str) -> dict[str, Any] | None:
        """Where task ``name`` resumes (cell_id, cell_index, the partial notebook, the execution count to go on
        from; its snapshot is in :func:`~mlnb.services.debug.snapshot_dir`), or None: it runs from the start
        (an older snapshot is cleared: it would misdescribe a new failure)."""
        plan = self.plans.get(name)
        if plan is None or not plan.ok:
            clear(self.spec, name)
            return None
        counts = [c.get("execution_count") or 0 for c in (plan.partial or {}).get("cells", [])
                  if c.get("cell_type") == "code" and c.get("id") != plan.cell_id]
        return {"cell_id": plan.cell_id, "cell_index": plan.cell_index, "partial": plan.partial,
                "count": max(counts, default=0) + 1}

    def after(self, outcomes: list[pipeline.TaskOutcome], build_run_id: str | None = None) -> list[str]:
        """Record failures, forget the snapshots of tasks that now succeeded; the resume notes."""
        notes = []
        for outcome in outcomes:
            earlier = self.failed_in.get(outcome.name)
            if outcome.status.ran and earlier and earlier != build_run_id:
                self.retired.append(earlier)
            if outcome.status is TaskStatus.FAILED:
                record_failure(self.spec, outcome, build_run_id)  # none for a function or SQL task: no cells
            elif outcome.status is TaskStatus.EXECUTED:
                clear(self.spec, outcome.name)
            if outcome.status.ran and outcome.name in self.plans:
                notes.append(f"{outcome.name}: {self.plans[outcome.name].reason}")
        return notes


def retire_failures(client: Any, recorder: FailureRecorder, build_run_id: str) -> None:
    """Tag the build runs whose failure ``build_run_id`` replaced: no Debug for them any more."""
    for run_id in dict.fromkeys(recorder.retired):
        try:
            client.set_tag(run_id, DEBUGGABLE_TAG, "false")
            client.set_tag(run_id, "mlnb.debug_replaced_by", build_run_id)
        except Exception:  # that run was deleted from MLflow: nothing left to offer Debug on
            continue
