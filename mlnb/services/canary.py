"""The canary life cycle as registry state: ``mlnb canary start|status|promote|abort``.

    start RUN_ID --audit "canary_start", alias challenger := the run's version--> serving: `mlnb serve
        --challenger models:/NAME@challenger --traffic P` (or --shadow) picks it up at its next poll
    status --reads the service's /metrics--> per variant: requests, error rate, p50/p99, agreement
    promote --the same transaction as `mlnb promote` (champion := the challenger's version), then audit
        "canary_promote" and the challenger alias removed--> the service serves it as champion alone
    abort --audit "canary_abort", alias challenger removed--> the service retires the challenger

``start`` goes through the promotion policy (the gate verdict, approvals, a clean tree...) as ``promote`` does:
a run that may not become champion may not take live traffic either (``--force`` overrides, audited). Every
step appends its audit line before the alias moves, under the registry lock. A crash between ``promote``'s two
steps leaves both aliases on one version (harmless: the service then has one model); running ``promote``
again finishes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlnb.adapters.mlflow import tracking
from mlnb.core import audit
from mlnb.core.io import file_lock
from mlnb.errors import PolicyRefused, PromotionRefused
from mlnb.services import policy, promotion, registry
from mlnb.services.registry import ModelRegistry, translated

CHALLENGER = "challenger"


@dataclass(frozen=True)
class CanaryOutcome:
    changed: bool
    message: str
    version: str | None


def _record(action: str, who: str, project: ModelRegistry, run: Any, version: str | None, champion: str | None,
            note: str, **extra: Any) -> audit.AuditRecord:
    metrics = tracking.build_summary(run)["metrics"] if run is not None else {}
    return audit.AuditRecord(action=action, user=who, run_id=run.info.run_id if run is not None else None,
                             model_name=project.model_name, version=version, previous_version=champion,
                             git_commit=run.data.tags.get("mlnb.git_commit", "") if run is not None else "",
                             metrics=metrics, champion_metrics={}, deltas={}, note=note, **extra)


@translated
def start(project: ModelRegistry, run_id: str, *, note: str = "", force: bool = False,
          user: str | None = None) -> CanaryOutcome:
    """Check the promotion policy, then point ``challenger`` at the build's version."""
    registry.check_run_id(run_id)
    who = audit.current_user(user)
    client = registry._client()
    name = project.model_name
    with file_lock(registry.lock_file(project.root)):
        promotion.finish_unfinished(client, project)
        run = registry._build_run(client, project, run_id)
        reqs = promotion.requirements(project, run, who)
        refusal = policy.refusal(reqs)
        champion = tracking.version_by_alias(client, name, promotion.CHAMPION)
        champion_version = str(champion.version) if champion else None
        if refusal and not force:
            audit.append(project.root, _record("refused", who, project, run, None, champion_version, note,
                                               reason=f"canary: {refusal}"))
            raise PolicyRefused(f"run {run_id}: no canary: {refusal}; use --force to start it anyway", reqs)
        version = registry._version_for(client, project, run, force)
        if version == champion_version:
            raise PromotionRefused(f"run {run_id}: {name} version {version} is the champion already: nothing to "
                                   "compare it with")
        current = tracking.version_by_alias(client, name, CHALLENGER)
        if current is not None and str(current.version) == version:
            return CanaryOutcome(False, f"{name} version {version} (run {run_id}) is the challenger already",
                                 version)
        bypassed = [r.name for r in policy.blocking(reqs)] if force else []
        audit.append(project.root, _record("canary_start", who, project, run, version, champion_version, note,
                                           forced=force, bypassed=bypassed, reason=refusal or ""))
        client.set_registered_model_alias(name, CHALLENGER, version)
    return CanaryOutcome(True, f"canary started: {name} version {version} (run {run_id}) is the challenger "
                               f"(champion: version {champion_version or 'none'}); serve it with mlnb serve "
                               f"--challenger models:/{name}@{CHALLENGER} --traffic PERCENT", version)


def _challenger(client: Any, project: ModelRegistry) -> tuple[str, Any]:
    found = tracking.version_by_alias(client, project.model_name, CHALLENGER)
    if found is None:
        raise PromotionRefused(f"{project.model_name}: no canary running (no {CHALLENGER} alias); start one with "
                               "mlnb canary start RUN_ID")
    build = registry._build_of(client, found)
    run = client.get_run(build) if build else None
    return str(found.version), run


@translated
def abort(project: ModelRegistry, *, note: str = "", user: str | None = None) -> CanaryOutcome:
    """Remove the ``challenger`` alias (audited): the champion takes all the traffic again."""
    who = audit.current_user(user)
    client = registry._client()
    name = project.model_name
    with file_lock(registry.lock_file(project.root)):
        version, run = _challenger(client, project)
        champion = tracking.version_by_alias(client, name, promotion.CHAMPION)
        audit.append(project.root, _record("canary_abort", who, project, run, version,
                                           str(champion.version) if champion else None, note))
        client.delete_registered_model_alias(name, CHALLENGER)
    return CanaryOutcome(True, f"canary aborted: {name} version {version} is no longer the challenger; the "
                               "champion answers every request", version)


def promote(project: ModelRegistry, *, note: str = "", force: bool = False,
            user: str | None = None) -> tuple[CanaryOutcome, promotion.Outcome]:
    """The challenger becomes champion through :func:`mlnb.services.promotion.promote` (policy, audit,
    ``previous``), then its ``challenger`` alias goes (audited)."""
    client = registry._client()
    with registry._mlflow_errors():
        version, run = _challenger(client, project)
    if run is None:
        raise PromotionRefused(f"{project.model_name} version {version}: no build run recorded on it, so the "
                               "promotion policy cannot be checked; use mlnb promote RUN_ID")
    outcome = promotion.promote(project, run.info.run_id, note=note, force=force, user=user)
    who = audit.current_user(user)
    with file_lock(registry.lock_file(project.root)), registry._mlflow_errors():
        current = tracking.version_by_alias(client, project.model_name, CHALLENGER)
        if current is not None and str(current.version) == version:
            audit.append(project.root, _record("canary_promote", who, project, run, version,
                                               outcome.previous_version, note))
            client.delete_registered_model_alias(project.model_name, CHALLENGER)
    return CanaryOutcome(True, f"canary promoted: {outcome.message}; the challenger alias is removed", version), \
        outcome


__all__ = ["CanaryOutcome", "PolicyRefused", "abort", "promote", "start"]
