"""``mlnb canary start|status|promote|abort`` (CLI glue over :mod:`mlnb.services.canary` and
:mod:`mlnb.services.canary_status`)."""

from __future__ import annotations

import click

from mlnb.cli.kit import handle_errors
from mlnb.cli.kit import project as _project
from mlnb.cli.kit import table as _table


@click.group()
def canary() -> None:
    """A challenger taking a share of live traffic: start it, watch it, promote or abort it.

    The service serves it with `mlnb serve --challenger models:/NAME@challenger --traffic PERCENT`
    (or --shadow); the alias moves here, the service follows at its next poll."""


@canary.command()
@click.argument("run_id")
@click.option("--force", is_flag=True, help="Start it although a requirement of the promotion policy is not held "
                                            "(audited).")
@click.option("--note", default="", help="Why: stored in the audit record.")
@handle_errors
def start(run_id: str, force: bool, note: str) -> None:
    """Point the `challenger` alias at RUN_ID's model, through the promotion policy's checks."""
    from mlnb.cli.registry import _requirements
    from mlnb.errors import PolicyRefused
    from mlnb.services import canary as service
    from mlnb.services import registry

    try:
        outcome = service.start(registry.open_registry(_project()), run_id, note=note, force=force)
    except PolicyRefused as exc:
        _requirements(exc.requirements)
        raise
    click.echo(outcome.message)


@canary.command()
@click.option("--url", default="http://127.0.0.1:8080", show_default=True, envvar="MLNB_SERVE_URL",
              help="The mlnb serve service (its /metrics and /version are read).")
@click.option("--prometheus", "prometheus", default=None, metavar="URL",
              help="Read the figures from this Prometheus server (it scrapes mlnb serve) instead of --url.")
@click.option("--window", default=None, metavar="DURATION",
              help="With --prometheus: the figures over this last stretch of time (increase()). [default: 10m]")
@click.option("--selector", default="", metavar="MATCHERS",
              help='With --prometheus: only series matching these label matchers, e.g. '
                   'app_kubernetes_io_name="breast-cancer",namespace="ml".')
@click.option("--totals", is_flag=True,
              help="With --prometheus: the counters since each process started (what --url shows), from the "
                   "series seen within --window, instead of their increase over it.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.pass_context
@handle_errors
def status(ctx: click.Context, url: str, prometheus: str | None, window: str | None, selector: str, totals: bool,
           as_json: bool) -> None:
    """Per variant: requests, error rate, latency p50/p99; and how often the challenger agrees with the champion.

    From the service's own /metrics (--url, every worker), or from a Prometheus server that scrapes it
    (--prometheus; the traffic split is not a series there, so it is not shown)."""
    import json

    from mlnb.errors import UserInputError
    from mlnb.services import canary_prometheus
    from mlnb.services.canary_status import status as read

    if prometheus is None:
        given = [name for name, value in (("--window", window), ("--selector", selector), ("--totals", totals))
                 if value]
        if given:
            raise UserInputError(f"{', '.join(given)}: only with --prometheus URL")
        found = read(url)
    elif ctx.get_parameter_source("url") == click.core.ParameterSource.COMMANDLINE:
        raise UserInputError("--url and --prometheus: give one (the service itself, or a Prometheus that scrapes it)")
    else:
        found = canary_prometheus.status(prometheus, window or canary_prometheus.DEFAULT_WINDOW, selector, totals)
    if as_json:
        click.echo(json.dumps(found.to_dict(), indent=2))
        return

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.2f} %"

    def ms(x: float | None) -> str:
        return "-" if x is None else f"{x:g} ms"

    def live(v: object) -> str:
        figures = getattr(v, "live", {})
        if not figures:
            return "-"
        f1 = f", f1 {figures['f1']:.3f}" if "f1" in figures else ""
        return f"acc {figures['accuracy']:.3f}{f1} ({int(figures['labelled_rows'])} labels)"

    rows = [[v.variant, v.version or "-", str(v.requests), str(v.scored), pct(v.error_rate), ms(v.p50_ms),
             ms(v.p99_ms), live(v)] for v in found.variants]
    click.echo(_table(rows, ["variant", "version", "answered", "scored", "error rate", "p50", "p99",
                             "live quality"]))
    if prometheus is not None:
        span = f"since each process started (series seen within {window or canary_prometheus.DEFAULT_WINDOW})" \
            if totals else f"over the last {window or canary_prometheus.DEFAULT_WINDOW} (Prometheus' increase)"
        click.echo(f"from {prometheus}: {span}" + (f", {selector}" if selector else ""))
    split = found.split
    if split:
        how = "shadow (the champion answers everything)" if split.get("shadow") else \
            f"{split.get('traffic_percent', 0):g} % to the challenger"
        click.echo(f"split: {how}" + ("" if split.get("challenger_serving") else "; no challenger is being served"))
    if found.compared_rows:
        click.echo(f"agreement: {pct(found.agreement)} of {found.compared_rows} rows scored by both "
                   f"({found.agreeing_rows} agree)" + (f"; {found.dropped} copies dropped" if found.dropped else ""))
    else:
        click.echo("agreement: no rows scored by both yet")


@canary.command()
@click.option("--force", is_flag=True, help="Promote although a requirement of the promotion policy is not held.")
@click.option("--note", default="", help="Why: stored in the audit records.")
@handle_errors
def promote(force: bool, note: str) -> None:
    """The challenger becomes champion (the same checked transaction as `mlnb promote`); its alias goes."""
    from mlnb.cli.registry import _requirements
    from mlnb.errors import PolicyRefused
    from mlnb.services import canary as service
    from mlnb.services import registry

    try:
        outcome, promoted = service.promote(registry.open_registry(_project()), note=note, force=force)
    except PolicyRefused as exc:
        _requirements(exc.requirements)
        raise
    _requirements(list(promoted.requirements))
    click.echo(outcome.message)


@canary.command()
@click.option("--note", default="", help="Why: stored in the audit record.")
@handle_errors
def abort(note: str) -> None:
    """Remove the `challenger` alias: the champion answers every request again."""
    from mlnb.services import canary as service
    from mlnb.services import registry

    click.echo(service.abort(registry.open_registry(_project()), note=note).message)


COMMANDS = [canary]
