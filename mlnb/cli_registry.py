"""``mlnb promote`` / ``rollback`` / ``promotions`` (CLI glue over :mod:`mlnb.registry`)."""

from __future__ import annotations

import click

from mlnb.clikit import handle_errors
from mlnb.clikit import root as _root
from mlnb.clikit import table as _table


@click.command()
@click.argument("run_id")
@click.option("--force", is_flag=True, help="Promote even though a requirement of the promotion policy is not held "
                                            "(the audit record names the ones bypassed).")
@click.option("--note", default="", help="Why: stored in the audit record.")
@handle_errors
def promote(run_id: str, force: bool, note: str) -> None:
    """Make RUN_ID's model the champion (MLflow alias `champion`; the old one becomes `previous`), when
    the promotion policy (params.yaml `promotion:`) holds: each requirement is listed, held or not."""
    from mlnb import registry
    from mlnb.errors import PolicyRefused

    try:
        outcome = registry.promote(registry.open_project(_root()), run_id, note=note, force=force)
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
    from mlnb import registry

    click.echo(registry.approve(registry.open_project(_root()), run_id, note=note)["message"])


@click.command()
@click.option("--note", default="", help="Why: stored in the audit record.")
@handle_errors
def rollback(note: str) -> None:
    """Move `champion` back to the `previous` version (run it again to undo)."""
    from mlnb import registry

    click.echo(registry.rollback(registry.open_project(_root()), note=note).message)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON lines.")
@handle_errors
def promotions(as_json: bool) -> None:
    """The promotion audit trail (promotions.jsonl): who, when, which run and version, why."""
    import json

    from mlnb import audit

    records = audit.read(_root())
    if as_json:
        for record in records:
            click.echo(json.dumps(record, sort_keys=True))
        return
    if not records:
        click.echo("No promotions yet: `mlnb promote RUN_ID`.")
        return
    rows = [[r["time"][:19], r["action"], r["user"], (r.get("run_id") or "-")[:12], r.get("version") or "-",
             r.get("previous_version") or "-", f"{r['deltas']['f1']:+.4f}" if "f1" in r.get("deltas", {}) else "-",
             (r.get("note") or r.get("reason") or "")[:60]] for r in records]
    click.echo(_table(rows, ["time (UTC)", "action", "user", "run", "version", "was", "f1 delta", "note"]))


@click.command()
@click.argument("run_id", required=False)
@handle_errors
def verdict(run_id: str | None) -> None:
    """Print the gate verdict of build RUN_ID (default: the last build): promotable, not_promotable,
    failed, or none (no build, or a build that did not evaluate). CI deploys only on promotable."""
    from mlnb import registry

    click.echo(registry.build_verdict(registry.open_project(_root()), run_id) or "none")


COMMANDS = [promote, approve, rollback, promotions, verdict]
