"""``mlnb runs`` / ``promote`` / ``rollback`` / ``promotions`` (CLI glue over :mod:`mlnb.services.runs` and
:mod:`mlnb.services.registry`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from mlnb.cli.kit import handle_errors
from mlnb.cli.kit import project as _project
from mlnb.cli.kit import root as _root
from mlnb.cli.kit import table as _table

if TYPE_CHECKING:
    from mlnb.core.project import Project


def _version(run: dict[str, Any]) -> str:
    if run.get("model_version") is None:
        return "-"
    marks = [m for m in ("champion", "previous") if run.get(m)]
    if (run.get("promotion") or {}).get("forced"):
        marks.append("forced")
    return f"v{run['model_version']}" + (f" ({', '.join(marks)})" if marks else "")


def _differs(run: dict[str, Any], width: int = 60) -> str:
    text = ", ".join(f"{d['key']}={d['value'] if d['value'] is not None else '-'} "
                     f"(champion {d['champion'] if d['champion'] is not None else '-'})"
                     for d in run.get("params_diff", []))
    return (text[:width - 3] + "...") if len(text) > width else text or "-"


def runs_rows(data: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """The ``mlnb runs`` table: one column per metric any run logged (nothing assumed about which)."""
    from mlnb.adapters.mlflow.tracking import short_commit

    keys = data["metric_keys"]
    rows = []
    for r in data["runs"]:
        when = datetime.fromtimestamp(r["start_time"] / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
        metrics = [f"{r['metrics'][k]:.4f}" if k in r["metrics"] else "-" for k in keys]
        verdict = r["verdict"].replace("_", " ")
        rows.append([r["run_id"], when, r["status"], short_commit(r["git_commit"]), *metrics, verdict,
                     *([_version(r), _differs(r)] if "params_diff" in r else [])])
    extra = ["version", "differs from the champion"] if any("params_diff" in r for r in data["runs"]) else []
    return rows, ["run_id", "started (UTC)", "status", "commit", *keys, "verdict", *extra]


def _builds_only(project: Project, max_results: int) -> dict[str, Any]:
    """A project without a registered model name: its builds, without registry columns."""
    from mlnb.adapters.mlflow import tracking
    from mlnb.services import runs

    experiment_id = tracking.configure(project.root, project.experiment)
    rows = [tracking.build_summary(r) for r in tracking.list_builds(experiment_id, max_results)]
    return {"runs": rows, "metric_keys": runs.metric_keys(rows)}


@click.command()
@click.option("-n", "--max-results", default=20, show_default=True, help="How many builds to list.")
@click.option("--json", "as_json", is_flag=True, help="Print what the Runs panel reads, as JSON.")
@handle_errors
def runs(max_results: int, as_json: bool) -> None:
    """Recent builds: every metric they logged, the gate's verdict, the registered version (champion,
    previous, forced) and the params that differ from the champion's build."""
    import json

    from mlnb.errors import EnvError
    from mlnb.services import registry
    from mlnb.services import runs as view

    project = _project()
    try:
        models = registry.open_registry(project)
    except EnvError:  # no mlflow.model_name in env.yaml: no registry to compare with
        data = _builds_only(project, max_results)
    else:
        data = view.list_runs(models, max_results)
    if as_json:
        click.echo(json.dumps(data, indent=1, sort_keys=True))
        return
    if not data["runs"]:
        click.echo("No builds recorded yet: run `mlnb build`.")
        return
    rows, header = runs_rows(data)
    click.echo(_table(rows, header))
    if any(r["git_commit"].endswith("-dirty") for r in data["runs"]):
        click.echo("* built with uncommitted changes to tracked files: the commit alone does not reproduce it")


@click.command()
@click.argument("run_id")
@click.option("--force", is_flag=True, help="Promote even though a requirement of the promotion policy is not held "
                                            "(the audit record names the ones bypassed).")
@click.option("--note", default="", help="Why: stored in the audit record.")
@handle_errors
def promote(run_id: str, force: bool, note: str) -> None:
    """Make RUN_ID's model the champion (MLflow alias `champion`; the old one becomes `previous`), when
    the promotion policy (params.yaml `promotion:`) holds: each requirement is listed, held or not."""
    from mlnb.errors import PolicyRefused
    from mlnb.services import promotion, registry

    try:
        outcome = promotion.promote(registry.open_registry(_project()), run_id, note=note, force=force)
    except PolicyRefused as exc:
        _requirements(exc.requirements)
        raise
    _requirements(list(outcome.requirements))
    click.echo(outcome.message)
    if outcome.record and outcome.record["deltas"]:
        click.echo("vs the old champion: " + ", ".join(f"{k} {v:+.4f}" for k, v in outcome.record["deltas"].items()))


def _requirements(requirements: list) -> None:
    for req in requirements:
        mark = "ok  " if req.held else "FAIL" if req.required else "-   "
        click.echo(f"  [{mark}] {req.describe()}")


@click.command()
@click.argument("run_id")
@click.option("--note", default="", help="Why: stored with the approval and in the audit trail.")
@handle_errors
def approve(run_id: str, note: str) -> None:
    """Approve build RUN_ID for promotion (params.yaml `promotion.approvals`: how many distinct people)."""
    from mlnb.services import promotion, registry

    click.echo(promotion.approve(registry.open_registry(_project()), run_id, note=note)["message"])


@click.command()
@click.option("--note", default="", help="Why: stored in the audit record.")
@handle_errors
def rollback(note: str) -> None:
    """Move `champion` back to the `previous` version (run it again to undo)."""
    from mlnb.services import promotion, registry

    click.echo(promotion.rollback(registry.open_registry(_project()), note=note).message)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON lines.")
@handle_errors
def promotions(as_json: bool) -> None:
    """The promotion audit trail (promotions.jsonl): who, when, which run and version, why."""
    import json

    from mlnb.core import audit

    records = audit.read(_root())
    if as_json:
        for record in records:
            click.echo(json.dumps(record, sort_keys=True))
        return
    if not records:
        click.echo("No promotions yet: `mlnb promote RUN_ID`.")
        return
    rows = [[r["time"][:19], r["action"] + (" (forced)" if r.get("forced") and r["action"] == "promote" else ""),
             r["user"], (r.get("run_id") or "-")[:12], r.get("version") or "-", r.get("previous_version") or "-",
             ", ".join(f"{k} {v:+.4f}" for k, v in (r.get("deltas") or {}).items())[:40] or "-",
             (r.get("note") or r.get("reason") or "")[:60]] for r in records]
    click.echo(_table(rows, ["time (UTC)", "action", "user", "run", "version", "was", "deltas", "note"]))


@click.command()
@click.argument("run_id", required=False)
@handle_errors
def verdict(run_id: str | None) -> None:
    """Print the gate verdict of build RUN_ID (default: the last build): promotable, not_promotable,
    failed, or none (no build, or a build that did not evaluate). CI deploys only on promotable."""
    from mlnb.services import registry

    click.echo(registry.build_verdict(registry.open_registry(_project()), run_id) or "none")


COMMANDS = [runs, promote, approve, rollback, promotions, verdict]
