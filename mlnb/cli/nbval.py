"""``mlnb nbval check|bless``: nbval regression checks of the task notebooks (CLI glue over
:mod:`mlnb.adapters.nbval.api`; exit codes as in :mod:`mlnb.cli.main`)."""

from __future__ import annotations

import sys
import time

import click

from mlnb.cli.kit import handle_errors, root, table


def _progress(message: str) -> None:
    click.echo(message, err=True)


@click.group("nbval")
def nbval_group() -> None:
    """Blessed reference notebooks (tests/nbval/) re-executed with env.ci.yaml and compared cell by cell."""


@nbval_group.command("check")
@click.argument("tasks", nargs=-1)
@handle_errors
def check(tasks: tuple[str, ...]) -> None:
    """Re-execute the blessed references and show the diff of every cell whose output changed."""
    from mlnb.adapters.nbval import api

    start = time.perf_counter()
    results = api.check(root(), list(tasks) or None, progress=_progress)
    for result in results:
        for diff in result.diffs:
            click.echo(f"\n{diff.describe()}\n{diff.diff}")
    rows = [[r.task, r.status, f"{r.elapsed:.1f}" if r.elapsed else "-", r.message or "-"] for r in results]
    click.echo("\n" + table(rows, ["task", "status", "seconds", "detail"]))
    bad = [r for r in results if r.status != "ok"]
    summary = f"{len(results) - len(bad)} of {len(results)} references match"
    click.echo(f"\nnbval: {summary} ({time.perf_counter() - start:.1f} s)")
    if not tasks:  # every reference: the result vouches for this commit (the promotion policy reads it)
        from mlnb.adapters.nbval import record

        record.write(root(), not bad, [r.task for r in results], summary, "mlnb nbval check")
    if bad:
        for result in bad:
            click.echo(f"mlnb: error: {result.message}", err=True)
        sys.exit(1)


@nbval_group.command("bless")
@click.argument("tasks", nargs=-1)
@handle_errors
def bless(tasks: tuple[str, ...]) -> None:
    """Regenerate the references (all, or the named tasks) after an intended change; print what changed."""
    from mlnb.adapters.nbval import api

    start = time.perf_counter()
    changes = api.bless(root(), list(tasks) or None, progress=_progress)
    for _, diff in changes:
        if diff:
            click.echo(diff)
    changed = [name for name, diff in changes if diff]
    click.echo(f"blessed {len(changes)} reference(s) in {api.REF_DIR}/ ({time.perf_counter() - start:.1f} s); "
               f"changed: {', '.join(changed) or 'none'}")
