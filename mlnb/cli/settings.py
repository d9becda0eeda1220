"""``mlnb settings``: every ``MLNB_*`` environment variable, its current value, default and help
(CLI glue over :mod:`mlnb.core.settings`; exit 2 when one holds a bad value)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from mlnb.cli.kit import table
from mlnb.errors import redact


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    return redact(str(value))  # a remote's or model's URI may carry credentials


@click.command("settings")
@click.option("--json", "as_json", is_flag=True, help="Print them as JSON (name, type, value, default, help...).")
def settings_command(as_json: bool) -> None:
    """The MLNB_* environment variables mlnb reads: current value, default, what each does
    (internal ones are set by mlnb for the processes it starts)."""
    from mlnb.core import settings

    rows = settings.rows()
    for row in rows:
        if isinstance(row["value"], str):
            row["value"] = redact(row["value"])
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    else:
        lines = [[r["name"] + (" (internal)" if r["internal"] else ""),
                  _shown(r["value"]) + (" (invalid)" if r["error"] else " (set)" if r["set"] else ""),
                  _shown(r["default"]), r["help"]] for r in rows]
        click.echo(table(lines, ["name", "value", "default", "help"]))
    errors = [r["error"] for r in rows if r["error"]]
    for error in errors:
        click.echo(f"mlnb: error: {error}", err=True)
    if errors:
        sys.exit(2)


COMMANDS = [settings_command]
