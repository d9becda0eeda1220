"""Promotion as one checked, crash-safe transaction (``mlnb promote``, ``rollback``, ``approve``).

Everything runs under the project's registry lock, so concurrent promotions are serialised::

    finish an unfinished transaction (below)
        |
    build run? --no--> RunNotFound (404)
        |
    the policy's requirements (mlnb.services.policy) --a required one not held, not forced--> PromotionRefused
        |                                                                            (409) + audit "refused"
    registered version of the run (forced without one: register the trained model)
        |
    already champion? --yes--> no change, says so
        |
    1. audit record appended (the intent: action, version, previous version, a transaction id)
    2. alias previous := old champion    3. alias champion := version
    4. version tags, mlnb.last_promotion = the record (holds the transaction id: the commit mark)

An alias never moves before its audit record exists. A crash (kill -9) anywhere leaves either no
record and no alias moved, or a record whose version lacks the ``mlnb.last_promotion`` of its
transaction: the next promote, rollback or approve (a retry) re-applies steps 2-4 first, which are
idempotent. ``MLNB_FAULT_AT=<step>`` (``registered``, ``audited``, ``previous``, ``champion``,
``tagged``) exits the process at that point: the crash tests use it.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

from mlnb.adapters.mlflow import tracking
from mlnb.core import audit, settings
from mlnb.core.io import file_lock
from mlnb.errors import PolicyRefused, PromotionRefused, UserInputError
from mlnb.services import policy, registry
from mlnb.services.registry import ModelRegistry, translated

FAULT_ENV = "MLNB_FAULT_AT"
CHAMPION, PREVIOUS = "champion", "previous"


def fault(step: str) -> None:
    """Die here, as a ``kill -9`` would, when ``MLNB_FAULT_AT`` names this step (crash tests)."""
    if settings.get(FAULT_ENV) == step:
        os._exit(137)


@dataclass(frozen=True)
class Outcome:
    changed: bool
    message: str
    version: str | None
    previous_version: str | None
    record: dict[str, Any] | None = None
    requirements: tuple[policy.Requirement, ...] = ()
    bypassed: tuple[str, ...] = ()
    completed: dict[str, Any] | None = None  # an unfinished earlier transaction this call finished

    def to_dict(self) -> dict[str, Any]:
        return {"changed": self.changed, "message": self.message, "version": self.version,
                "previous_version": self.previous_version,
                "requirements": [r.to_dict() for r in self.requirements], "bypassed": list(self.bypassed),
                "completed": self.completed}


def project_policy(models: Any) -> policy.Policy:
    """The promotion policy in the parameters of the project of ``models`` (a
    :class:`~mlnb.services.registry.ModelRegistry`)."""
    return policy.Policy.from_env(models.project.env, "params.yaml")


def requirements(project: Any, run: Any, user: str) -> list[policy.Requirement]:
    return policy.check(project.root, registry._client(), run, project_policy(project), user)


def applied(client: Any, record: dict[str, Any]) -> bool:
    """The transaction of ``record`` finished: its version carries it as ``mlnb.last_promotion``."""
    try:
        tags = client.get_model_version(record["model_name"], record["version"]).tags
        return bool(json.loads(tags.get("mlnb.last_promotion", "{}")).get("txn") == record["txn"])
    except Exception:  # a version that is gone, a tag that is not JSON: not ours to finish
        return False


def apply(client: Any, project: Any, record: dict[str, Any]) -> None:
    """Steps 2-4 of the record's transaction (idempotent)."""
    name = project.model_name
    if record.get("previous_version"):
        client.set_registered_model_alias(name, PREVIOUS, record["previous_version"])
    fault("previous")
    client.set_registered_model_alias(name, CHAMPION, record["version"])
    fault("champion")
    registry._tag_version(client, project, record["version"], audit.AuditRecord(**{
        k: v for k, v in record.items() if k in audit.AuditRecord.__dataclass_fields__}))
    if record.get("action") == "promote" and record.get("note"):  # what the MLflow UI shows on the version
        client.update_model_version(name, record["version"], description=str(record["note"])[:5000])
    fault("tagged")


def finish_unfinished(client: Any, project: Any) -> dict[str, Any] | None:
    """Re-apply the last promotion or rollback in the audit trail if it did not finish (a crash);
    returns its record then. Call under the registry lock."""
    last: dict[str, Any] | None = next((r for r in reversed(audit.read(project.root))
                 if r.get("action") in ("promote", "rollback") and r.get("model_name") == project.model_name), None)
    if not last or not last.get("txn") or not last.get("version") or applied(client, last):
        return None
    apply(client, project, last)
    return last


def _done(completed: dict[str, Any] | None) -> str:
    if not completed:
        return ""
    return (f" (first finished an interrupted {completed['action']} of {completed['model_name']} version "
            f"{completed['version']}, run {completed.get('run_id') or '-'})")


@translated
def promote(project: ModelRegistry, run_id: str, *, note: str = "", force: bool = False,
            user: str | None = None) -> Outcome:
    """Check the policy, then move ``champion`` to the build's version (``previous`` to the old one)."""
    registry.check_run_id(run_id)
    who = audit.current_user(user)
    client = registry._client()
    with file_lock(registry.lock_file(project.root)):
        completed = finish_unfinished(client, project)
        run = registry._build_run(client, project, run_id)
        reqs = requirements(project, run, who)
        metrics = tracking.build_summary(run)["metrics"]
        champion = tracking.version_by_alias(client, project.model_name, CHAMPION)
        info = registry._describe(client, champion) if champion else None
        old_metrics = info["metrics"] if info else {}
        previous = info["version"] if info else None
        bypassed = [r.name for r in policy.blocking(reqs)]
        common = {"user": who, "run_id": run_id, "model_name": project.model_name,
                  "git_commit": run.data.tags.get("mlnb.git_commit", ""), "metrics": metrics,
                  "champion_metrics": old_metrics, "deltas": audit.deltas(metrics, old_metrics), "note": note,
                  "forced": force, "previous_version": previous,
                  "requirements": [{"name": r.name, "held": r.held, "required": r.required} for r in reqs]}
        refusal = policy.refusal(reqs)
        if refusal and not force:
            audit.append(project.root, audit.AuditRecord(action="refused", version=None, reason=refusal, **common))
            raise PolicyRefused(f"run {run_id}: not promoted: {refusal}; use --force to promote it anyway", reqs)
        version = registry._version_for(client, project, run, force)
        fault("registered")
        if version == previous:
            if completed and completed.get("run_id") == run_id:
                return Outcome(True, f"finished the interrupted promotion of run {run_id}: {project.model_name} "
                                     f"version {version} is the champion", version, completed.get("previous_version"),
                               completed, tuple(reqs), tuple(completed.get("bypassed", [])), completed)
            return Outcome(False, f"version {version} of {project.model_name} (run {run_id}) is already the "
                                  f"champion: nothing changed{_done(completed)}", version, None,
                           requirements=tuple(reqs), completed=completed)
        record = audit.AuditRecord(action="promote", version=version, reason=refusal or "",
                                   txn=uuid.uuid4().hex, bypassed=bypassed if force else [], **common)
        audit.append(project.root, record)  # the intent, before any alias moves
        fault("audited")
        apply(client, project, record.to_dict())
    was = f" (was version {previous})" if previous else ""
    forced = f" despite: {', '.join(bypassed)} not held (forced)" if bypassed else ""
    return Outcome(True, f"promoted run {run_id}: {project.model_name} version {version} is now the champion"
                         f"{was}{forced}{_done(completed)}", version, previous, record.to_dict(), tuple(reqs),
                   tuple(record.bypassed), completed)


@translated
def rollback(project: ModelRegistry, *, note: str = "", user: str | None = None) -> Outcome:
    """Swap ``champion`` and ``previous`` (so a second rollback undoes the first)."""
    who = audit.current_user(user)
    client = registry._client()
    name = project.model_name
    with file_lock(registry.lock_file(project.root)):
        completed = finish_unfinished(client, project)
        if completed and completed["action"] == "rollback":  # the retry of an interrupted rollback: done now
            return Outcome(True, f"finished the interrupted rollback: {name} version {completed['version']} is the "
                                 "champion again", completed["version"], completed.get("previous_version"),
                           completed, completed=completed)
        champion, previous = (tracking.version_by_alias(client, name, a) for a in (CHAMPION, PREVIOUS))
        if previous is None:
            raise PromotionRefused(f"{name}: no previous champion to roll back to")
        back, current = registry._describe(client, previous), registry._describe(client, champion) if champion \
            else None
        old_metrics = current["metrics"] if current else {}
        record = audit.AuditRecord(
            action="rollback", user=who, run_id=back["run_id"], model_name=name, version=back["version"],
            previous_version=current["version"] if current else None,
            git_commit=back["run"].data.tags.get("mlnb.git_commit", "") if back["run"] else "",
            metrics=back["metrics"], champion_metrics=old_metrics, deltas=audit.deltas(back["metrics"], old_metrics),
            note=note, txn=uuid.uuid4().hex)
        audit.append(project.root, record)
        fault("audited")
        apply(client, project, record.to_dict())
    was = f" (version {record.previous_version} is now {PREVIOUS})" if record.previous_version else ""
    return Outcome(True, f"rolled back: {name} version {back['version']} is the champion again{was}"
                         f"{_done(completed)}", back["version"], record.previous_version, record.to_dict(),
                   completed=completed)


@translated
def approve(project: ModelRegistry, run_id: str, *, note: str = "", user: str | None = None) -> dict[str, Any]:
    """Record the approval of ``user`` on build ``run_id`` (a run tag, shared through the MLflow store,
    and an audit line). Approving twice replaces the first; nobody approves a failed build."""
    registry.check_run_id(run_id)
    who = audit.current_user(user)
    client = registry._client()
    with file_lock(registry.lock_file(project.root)):
        finish_unfinished(client, project)
        run = registry._build_run(client, project, run_id)
        if run.data.tags.get("mlnb.gate.verdict") == "failed" or run.data.tags.get("mlnb.status") == "failed":
            raise UserInputError(f"run {run_id}: the build failed; there is nothing to approve")
        record = audit.AuditRecord(action="approve", user=who, run_id=run_id, model_name=project.model_name,
                                   version=None, previous_version=None,
                                   git_commit=run.data.tags.get("mlnb.git_commit", ""),
                                   metrics=tracking.build_summary(run)["metrics"], champion_metrics={}, deltas={},
                                   note=note)
        client.set_tag(run_id, policy.approval_tag(who), json.dumps({"user": who, "time": record.time,
                                                                     "note": note[:1000]}))
        audit.append(project.root, record)
        people = sorted(policy.approvers(client.get_run(run_id).data.tags))
    return {"run_id": run_id, "user": who, "approvers": people,
            "message": f"approved run {run_id} as {who} ({len(people)} approval(s): {', '.join(people)})"}
