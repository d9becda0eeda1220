"""``mlnb lineage``: one model's chain, from its version back to the data
(CLI glue over :mod:`mlnb.services.lineage`)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from mlnb.cli.kit import handle_errors
from mlnb.cli.kit import project as _project


@click.command()
@click.argument("ref", metavar="RUN_ID|models:/NAME/VERSION|models:/NAME@ALIAS")
@click.option("--json", "as_json", is_flag=True, help="Print the chain as JSON.")
@click.option("--verify", is_flag=True, help="Re-hash what is available (model files, products, DVC cache, "
                                             "notebooks in MLflow); exit 1 when a link is broken.")
@handle_errors
def lineage(ref: str, as_json: bool, verify: bool) -> None:
    """Where a model comes from: version <- build run <- git commit <- params <- data and stage hashes
    (dvc.lock) <- executed notebooks <- artifact sha256 <- promotions and approvals."""
    from mlnb.services import lineage as service
    from mlnb.services import registry

    data = service.lineage(registry.open_registry(_project()), ref, verify=verify)
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        _print(data)
    if service.broken(data):
        sys.exit(1)


def _print(d: dict[str, Any]) -> None:
    m, b, g = d["model"], d["build"], d["git"]
    if m:
        aliases = f" ({', '.join(m['aliases'])})" if m["aliases"] else ""
        click.echo(f"model       {m['name']} version {m['version']}{aliases}, sha256 {m['artifact_sha256'] or '-'}, "
                   f"registered by {m['registered_by']}")
    else:
        click.echo("model       (no registered version from this build)")
    when = datetime.fromtimestamp(b["start_time"] / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    click.echo(f"<- build   run {b['run_id']} ({b['status']}, {when} UTC), gate {b['verdict'] or '-'}: "
               f"{b['gate_reason'][:160]}")
    clean = {"true": "clean tree", "false": f"local edits: {g['changed'] or '?'}"}.get(g["clean"] or "", "")
    click.echo(f"<- git     commit {g['commit'] or '-'}{f' ({clean})' if clean else ''}")
    params = ", ".join(f"{k}={v}" for k, v in d["params"].items() if not k.startswith(("mlflow.", "promotion.")))
    click.echo(f"<- params  {params[:400]}")
    if d["gate_settings_changes"]:
        click.echo(f"            gate settings differ from the committed params.yaml: {d['gate_settings_changes']}")
    stages = d["dvc"]["stages"]
    if not stages:
        click.echo(f"<- data    not recorded in dvc.lock: {d['dvc']['note'] or '-'}")
    raw = {p: m5 for entry in stages.values() for p, m5 in entry["deps"].items() if p.startswith("data/")}
    if raw:
        click.echo("<- data    " + ", ".join(f"{p} md5 {m5[:12]}" for p, m5 in raw.items()))
    for name, entry in stages.items():
        outs = [(p.rsplit("/", 1)[-1], m5) for p, m5 in entry["outs"].items()]
        click.echo(f"<- stage   {name}: " + ", ".join(f"{f} {m5[:12]}" for f, m5 in outs if not f.startswith(".")))
    for nb in d["notebooks"]:
        click.echo(f"<- notebook {nb['task']}: run {nb['run_id']} {', '.join(nb['artifacts']) or '(none logged)'}")
    for r in d["promotions"]:
        forced = f", forced past {', '.join(r.get('bypassed') or []) or 'the gate'}" if r.get("forced") else ""
        click.echo(f"<- {r['action']:<8} {r['time'][:19]} by {r['user']}, version {r.get('version') or '-'}{forced}"
                   f"{': ' + r['note'] if r.get('note') else ''}")
    for a in d["approvals"]:
        click.echo(f"<- approved {a.get('time', '')[:19]} by {a['user']}{': ' + a['note'] if a.get('note') else ''}")
    if "links" in d:
        click.echo("verify:")
        same = [link for link in d["links"] if link["held"] and link["detail"] == "matches dvc.lock"]
        kept = [link for link in d["links"] if link["held"] and link["detail"].startswith("rebuilt since (")]
        if same:
            click.echo(f"  [ok    ] {len(same)} files (outputs and data) hash to what dvc.lock recorded")
        if kept:
            click.echo(f"  [ok    ] {len(kept)} outputs rebuilt since (the workspace's dvc.lock records the new "
                       "copies); the build's copies are intact in the DVC cache")
        for link in d["links"]:
            if link not in same and link not in kept:
                mark = {True: "ok    ", False: "BROKEN", None: "n/a   "}[link["held"]]
                click.echo(f"  [{mark}] {link['name']}: {link['detail']}")


COMMANDS = [lineage]
