"""``mlnb sweep``: run a grid of parameter values as builds (CLI glue over :mod:`mlnb.services.sweep`)."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from mlnb.cli.kit import entry_point_option, handle_errors, project, table


def _progress(event: str, point: object) -> None:
    stamp = datetime.now().strftime("%H:%M:%S")
    label = getattr(point, "label", "")
    if event == "start":
        click.echo(f"{stamp}  start  point {getattr(point, 'index', 0) + 1}: {label}")
        return
    figure = f"{point.metric:.4f}" if getattr(point, "metric", None) is not None else "-"
    mark = "done  " if getattr(point, "ok", False) else "FAILED"
    click.echo(f"{stamp}  {mark} point {getattr(point, 'index', 0) + 1}: {label} ({getattr(point, 'elapsed', 0):.1f} s,"
               f" ran {len(getattr(point, 'ran', []))} tasks, metric {figure})", err=mark == "FAILED")


@click.command("sweep")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=V1,V2,...", required=True,
              help="A swept key and its values (repeat for a grid), or KEY=VALUE fixed for every point.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Points built at once (after the first, which builds the shared tasks).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="dask: each point's tasks run on the Dask cluster (see `mlnb build --executor dask`).")
@click.option("--scheduler", metavar="tcp://HOST:PORT", default=None, help="The Dask scheduler (with --executor dask).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Local Dask cluster size (--executor dask).")
@entry_point_option
@handle_errors
def sweep(params: tuple[str, ...], jobs: int, executor: str, scheduler: str | None, workers: int | None,
          entry_point: str | None) -> None:
    """Build every point of a parameter grid (its own MLflow build run, all under one sweep run); the tasks
    upstream of the swept keys run once; the points sorted by the gate metric, the best marked."""
    from mlnb.services.cluster import remote_url
    from mlnb.services.sweep import run_sweep
    from mlnb.services.sweep import table as rows_of

    proj = project(None, (), entry_point)
    build_args: tuple[str, ...] = ()
    env: dict[str, str] = {}
    if executor == "dask":
        build_args = ("--executor", "dask", *(("--scheduler", scheduler) if scheduler else ()),
                      *(("--workers", str(workers)) if workers else ()))
        if url := remote_url(proj):  # the points' workspaces are not DVC repositories: name the remote
            env["MLNB_DVC_REMOTE"] = url
    elif scheduler or workers:
        raise click.UsageError("--scheduler and --workers go with --executor dask")
    result = run_sweep(proj, params, jobs=jobs, build_args=build_args, env=env, progress=_progress)
    click.echo(f"\nshared tasks (run once): {', '.join(result.shared) or 'none'}")
    rows, header = rows_of(result)
    click.echo(table(rows, header))
    click.echo(f"MLflow sweep run: {result.run_id}  ({len(result.points)} points, sorted by {result.metric})")
    best = result.best
    if best is not None and best.run_id:
        click.echo(f"best: {best.label}: {result.metric} {best.metric:.4f}, {(best.verdict or '-').replace('_', ' ')}"
                   f"; promote it with: mlnb promote {best.run_id}")
    failed = [p for p in result.points if not p.ok]
    for p in failed:
        click.echo(f"FAILED point {p.index + 1} ({p.label}): {p.error} (log: {p.workspace / 'build.log'})", err=True)
    sys.exit(1 if failed else 0)


COMMANDS = [sweep]
