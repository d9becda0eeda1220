"""What a build run records about its starting point, its gate verdict and its DVC record (tags and
artifacts), and how a gate verdict that stopped a build is told apart from a crash."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mlnb.adapters import git as gitinfo
from mlnb.adapters.ploomber import pipeline
from mlnb.core.gate import FAILED, NOT_PROMOTABLE, PROMOTABLE, GateResult
from mlnb.core.spec import PipelineSpec


def tree_tags(root: Path) -> dict[str, str]:
    """Whether the build starts from a clean checkout (``dvc.lock``/``dvc.yaml``, which builds write, aside)."""
    commit, changed = gitinfo.tree_state(root)
    if commit is None:
        return {}
    return {"mlnb.git_clean": str(not changed).lower(), **({"mlnb.git_changed": ", ".join(changed)[:1000]}
                                                         if changed else {})}


def is_gate_failure(outcome: pipeline.TaskOutcome) -> bool:
    """The task stopped the build because the gate's verdict is ``failed`` (:func:`mlnb.tasklib.task.enforce_gate`)."""
    return outcome.failure is not None and outcome.failure.ename == "GateFailed"


def gate_verdict(root: Path, env: dict[str, Any], gate: GateResult) -> tuple[GateResult, dict[str, str]]:
    """The build's judgement of ``gate`` and the build run's gate tags. A verdict reached with gate
    settings other than the committed ``params.yaml`` (``-p gate.*``, another ``--env-file``) names the
    difference and is not promotable (the judged result's ``verdict``, ``reason``, ``config_changes``)."""
    committed = gitinfo.committed_env(root)
    changes = gitinfo.section_changes(committed.get("gate"), env.get("gate"), "gate") if committed else []
    verdict = gate.verdict
    reason = " ".join(gate.reason.split())
    if changes and verdict == PROMOTABLE:
        verdict = NOT_PROMOTABLE
        reason = f"gate settings differ from the committed params.yaml ({'; '.join(changes)}); with them: {reason}"
    judged = replace(gate, verdict=verdict, reason=reason, config_changes=changes)
    tags = {"mlnb.gate.verdict": verdict, "mlnb.gate_reason": reason[:5000],
            "mlnb.gate_passed": str(verdict != FAILED).lower(),  # the old tag: "the build's gate passed"
            "mlnb.gate.metric": gate.metric}
    if changes:
        tags["mlnb.gate.config_changes"] = "; ".join(changes)[:5000]
    return judged, tags


def record_dvc_on_run(client: Any, run_id: str, spec: PipelineSpec, result: Any) -> None:
    """What DVC recorded, on the build run: the stages (tag ``mlnb.dvc.recorded``) and the resulting
    ``dvc.lock`` (artifact), or why nothing was (``mlnb.dvc.note``). The promotion policy and
    ``mlnb lineage`` read them."""
    lock = spec.root / "dvc.lock"
    complete = bool(result.recorded) and not result.record_error and all(
        name in result.recorded for name in spec.tasks)
    if complete and lock.is_file():
        client.set_tag(run_id, "mlnb.dvc.recorded", ",".join(result.recorded)[:5000])
        client.log_artifact(run_id, str(lock))
    else:
        note = result.record_error or result.record_note or "not every task's outputs were recorded in dvc.lock"
        client.set_tag(run_id, "mlnb.dvc.note", note[:5000])
