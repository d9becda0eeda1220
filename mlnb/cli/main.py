"""The ``mlnb`` command line: parse arguments, call the core, print, exit.

Exit codes: 0 ok, 1 a task or the gate failed, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from mlnb.adapters.mlflow import tracking
from mlnb.adapters.mlflow.tracking import telemetry_off
from mlnb.cli import canary as cli_canary
from mlnb.cli import data as cli_data
from mlnb.cli import debug as cli_debug
from mlnb.cli import deploy as cli_deploy
from mlnb.cli import export as cli_export
from mlnb.cli import init as cli_init
from mlnb.cli import lineage as cli_lineage
from mlnb.cli import monitor as cli_monitor
from mlnb.cli import nbval as cli_nbval
from mlnb.cli import registry as cli_registry
from mlnb.cli import serve as cli_serve
from mlnb.cli import settings as cli_settings
from mlnb.cli import sweep as cli_sweep
from mlnb.cli.kit import entry_point_option, env_overrides, exit_now, handle_errors, skip_slow_optional_imports
from mlnb.cli.kit import project as _project
from mlnb.cli.kit import root as _root
from mlnb.cli.kit import table as _table


@click.group()
@click.version_option(package_name="mlnb")
def main() -> None:
    """mlnb: notebooks -> a reproducible, tracked, gated pipeline."""
    telemetry_off()


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
              epilog="Ploomber's --env--KEY VALUE overrides (--env--a--b for a nested key) work as -p KEY=VALUE.")
@click.option("--force", is_flag=True, help="Run every task, up to date or not.")
@click.option("--env-file", type=click.Path(dir_okay=False), help="Use this env file instead of env.yaml.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Override an env key for this build, e.g. -p train.C=0.5 (repeatable).")
@click.option("--no-dvc", is_flag=True, help="Do not record the outputs in DVC (dvc.lock) afterwards.")
@click.option("--engine", type=click.Choice(["fork", "papermill"]), default="fork", show_default=True,
              help="fork: pre-started forked kernels, a fresh process per task; papermill: stock Ploomber.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Independent tasks to run at once (fork engine). [default: number of cores]")
@click.option("--resume", is_flag=True, help="Restart a failed task at its failing cell from its snapshot, when "
                                              "the cells before it, its params and upstream are unchanged.")
@click.option("--snapshot-max-mb", type=click.FloatRange(min=0), default=512, show_default=True,
              help="Size limit of a failed task's namespace snapshot (what does not fit is listed).")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="dask: run each task on a Dask worker (--scheduler, else a local cluster).")
@click.option("--scheduler", metavar="tcp://HOST:PORT", default=None,
              help="The Dask scheduler to use (or MLNB_DASK_SCHEDULER). [default: a local cluster]")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes of the local cluster. [default: number of cores]")
@click.option("--shared-fs", is_flag=True, help="The Dask workers mount this project at the same path: run tasks "
                                                 "in place instead of exchanging products through the DVC remote.")
@click.option("--retries", type=click.IntRange(min=0, max=20), default=None,
              help="Runs of a task again when its worker dies (or MLNB_DASK_RETRIES). [default: 2]")
@entry_point_option
@click.pass_context
@handle_errors
def build(ctx: click.Context, force: bool, env_file: str | None, params: tuple[str, ...], no_dvc: bool, engine: str,
          jobs: int | None, resume: bool, snapshot_max_mb: float, executor: str, scheduler: str | None,
          workers: int | None, shared_fs: bool, retries: int | None, entry_point: str | None) -> None:
    """Run outdated tasks under one MLflow build run, then record the outputs in DVC."""
    from mlnb.services.build import BuildRequest, check_request, run_build
    from mlnb.services.cluster import ClusterOptions

    params = (*params, *env_overrides(ctx.args))
    skip_slow_optional_imports()
    if executor == "local" and (scheduler or workers or shared_fs or retries is not None):
        raise click.UsageError("--scheduler, --workers, --shared-fs and --retries go with --executor dask")
    on = ClusterOptions(scheduler, workers, shared_fs, retries) if executor == "dask" else None
    request = BuildRequest(force=force, record=not no_dvc, engine=engine, jobs=jobs, resume=resume,
                           snapshot_mb=snapshot_max_mb, cluster=on)
    check_request(request)
    project = _project(env_file, params, entry_point)
    if on is not None:  # what the cluster cannot do is refused first, in one line
        from mlnb.services.cluster import check

        check(project, on)
    _announce_footprint(project)
    result = run_build(project, request, progress=_progress)
    if not result.ran:
        click.echo(f"Nothing to do: all {len(result.outcomes)} tasks are up to date "
                   f"({result.elapsed:.1f} s). Use --force to rebuild.")
    _report_and_exit(result)


def _announce_footprint(project: Any) -> None:
    """Before the first build of a project (no state directory yet): what mlnb writes into it, once
    (after the spec is read: a spec error stays one line)."""
    from mlnb.core import footprint, settings

    if settings.state_dir(project.root).exists() or not project.spec:
        return
    click.echo("mlnb: first build here; besides the pipeline's products, mlnb writes:", err=True)
    for line in footprint.lines():
        click.echo(f"  {line}", err=True)


@main.command("run")
@click.argument("task")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Override an env key (repeatable).")
@click.option("--exchange", is_flag=True, help="A workflow step (Argo, Kubeflow): fetch the upstream products and "
                                               "DVC-tracked data from the DVC remote by hash, run, push the products.")
@click.option("--upstream", "upstream", multiple=True, metavar="MANIFEST_JSON",
              help="With --exchange: an upstream step's products manifest (repeatable).")
@click.option("--products-out", type=click.Path(dir_okay=False), default=None,
              help="With --exchange: write this task's products manifest here.")
@entry_point_option
@handle_errors
def run_task(task: str, params: tuple[str, ...], exchange: bool, upstream: tuple[str, ...], products_out: str | None,
             entry_point: str | None) -> None:
    """Run exactly TASK (forced; its upstream products must exist). `dvc repro` stages call this."""
    from mlnb.services.build import BuildRequest, run_build

    project = _project(None, params, entry_point)
    if not exchange:
        if upstream or products_out:
            raise click.UsageError("--upstream and --products-out go with --exchange")
        _report_and_exit(run_build(project, BuildRequest(only=task, record=False)))
    _run_step(project, task, list(upstream), products_out)


def _run_step(project: Any, task: str, upstream: list[str], products_out: str | None) -> None:
    import json

    from mlnb.core.io import atomic_write
    from mlnb.errors import UserInputError
    from mlnb.services.cluster import remote_url
    from mlnb.services.remote_task import run_step

    url = remote_url(project)
    if not url:
        raise UserInputError("--exchange: no DVC remote: set MLNB_DVC_REMOTE (or the project's default remote)")
    result = run_step(project, task, upstream, url)
    if products_out:
        Path(products_out).parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(products_out, encoding="utf-8") as fh:
            json.dump({"task": task, "products": result.products}, fh)
    if not result.ok:
        click.echo(f"FAILED task {task}: {result.failure}", err=True)
        exit_now(1)
    click.echo(f"{task}: done in {result.elapsed:.1f} s, {len(result.products)} files pushed to {url}")
    exit_now(0)


def _report_and_exit(result: Any) -> None:
    try:
        _report_build(result)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    if result.ran:  # Ploomber, MLflow, pandas... are loaded: skip tearing them down (~0.8 s)
        exit_now(code)
    sys.exit(code)


def _progress(event: str, task: str, seconds: float) -> None:
    """One line per task event (called from the build's main thread only, so lines never mix)."""
    stamp = datetime.now().strftime("%H:%M:%S")
    if event == "started":
        click.echo(f"{stamp}  start  {task}")
    else:
        mark = {"executed": "done  ", "stopped": "stop  "}.get(event, "FAILED")
        click.echo(f"{stamp}  {mark} {task} ({seconds:.1f} s)", err=event == "failed")


def _report_build(result: Any) -> None:
    from mlnb.core.gate import headline
    from mlnb.services import debug
    from mlnb.services.build_tags import is_gate_failure

    for warning in result.warnings:
        click.echo(f"mlnb: warning: {warning}", err=True)
    if result.synced:
        click.echo("dvc.yaml regenerated from pipeline.yaml (`mlnb dvc sync`)")
    if result.ran:
        rows = [[o.name, o.status.value, f"{o.elapsed:.1f}" if o.status.ran else "-"]
                for o in result.outcomes]
        click.echo("\n" + _table(rows, ["task", "status", "seconds"]))
        for o in result.outcomes:
            if o.status == "stopped":  # Ploomber's DAGBuildEarlyStop: a graceful end, not a failure
                click.echo(f"build stopped early by task {o.name} (DAGBuildEarlyStop); the tasks after it did not run")
        if result.metrics:
            click.echo("metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items()))
        click.echo(f"MLflow build run: {result.run_id}   total {result.elapsed:.1f} s")
        if url := tracking.ui_url(result.run_id):
            click.echo(f"  in the MLflow UI: {url}")
    for note in result.resume_notes:
        click.echo(f"resume: {note}")
    gate_task = next((o for o in result.failed if is_gate_failure(o)), None) if result.gate else None
    for o in result.failed:
        if o is gate_task:  # a verdict, said once below, not a crash to debug
            continue
        where = o.failure.describe() if o.failure else "see the partial notebook"
        click.echo(f"FAILED task {o.name}: {where}", err=True)
        if o.notebook:
            click.echo(f"  partial notebook and outputs kept in {o.notebook.parent.relative_to(Path.cwd())}/",
                       err=True)
        if debug.can_debug(Path.cwd(), o.name):
            click.echo(f"  debug it where it failed: mlnb debug {o.name} (then `mlnb build --resume`)", err=True)
    if result.recorded:
        click.echo(f"recorded in DVC (dvc.lock): {', '.join(result.recorded)}")
    if result.record_note:
        click.echo(f"note: {result.record_note}")
    if result.record_error:
        click.echo(f"mlnb: error: {result.record_error}", err=True)
    if result.interrupted:
        click.echo("mlnb: interrupted (Ctrl-C): the tasks not started were not run", err=True)
        sys.exit(130)
    if result.gate:  # the verdict: failed (exit 1), or healthy (exit 0) and promotable or not
        click.echo(headline(result.gate), err=not result.gate.passed)
        if gate_task is not None and gate_task.notebook:
            click.echo(f"  {gate_task.name} outputs kept in {gate_task.notebook.parent.relative_to(Path.cwd())}/",
                       err=True)
    if result.hook_error:
        click.echo(f"FAILED: {result.hook_error}", err=True)
    if not result.ok:
        sys.exit(1)
    if result.artifact:
        click.echo(f"serving artifact: {result.artifact.relative_to(Path.cwd())}/ (MLflow pyfunc)")
    if result.record_error:
        sys.exit(1)


@main.command()
@click.argument("task", required=False)
@click.option("--env-file", type=click.Path(dir_okay=False), help="Use this env file instead of env.yaml.")
@click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE", help="Env override, as for build.")
@click.option("--explain", is_flag=True, help="For each outdated task (or TASK): every change, cell diffs, "
                                               "param old -> new, upstream content hashes; cosmetic edits marked.")
@entry_point_option
@handle_errors
def status(task: str | None, env_file: str | None, params: tuple[str, ...], explain: bool,
           entry_point: str | None) -> None:
    """Which tasks are up to date or outdated, and why (runs nothing)."""
    skip_slow_optional_imports()
    if explain or task:
        from mlnb.services.explain import explain as explain_tasks
        from mlnb.services.status import task_states

        project = _project(env_file, params, entry_point)
        for found in explain_tasks(project.spec, task, lambda: task_states(project, fast=False)):
            cli_debug.print_explanation(found)
        return
    from mlnb.services.status import task_states

    states = task_states(_project(env_file, params, entry_point))
    rows = [[s.name, "outdated" if s.outdated else "up to date", "; ".join(s.reasons) or "-"] for s in states]
    click.echo(_table(rows, ["task", "status", "why"]))


@main.command()
@click.option("-o", "--output", default="reports/report.html", show_default=True, type=click.Path(dir_okay=False))
@entry_point_option
@handle_errors
def report(output: str, entry_point: str | None) -> None:
    """Write an HTML report of the last build (open it in a browser)."""
    from mlnb.services.report import build_report

    project = _project(entry_point=entry_point)
    path = build_report(project.spec, project.root / output, project.root)
    click.echo(f"report written: {path}")


def _cell_list(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected cell indices like 5,12,30", param_hint="--at") from None


@main.command()
@click.argument("notebook", type=click.Path(dir_okay=False))
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Directory to write the pipeline to.")
@click.option("--by", type=click.Choice(["headings", "tags"]), default="headings", show_default=True,
              help="Split at markdown headings, or at cells tagged step:NAME.")
@click.option("--level", type=click.IntRange(1, 3), default=2, show_default=True,
              help="With --by headings: split at headings of this level or higher.")
@click.option("--at", "at", metavar="I,J,...", help="Split before these cell indices (0-based) instead.")
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@click.option("--force", is_flag=True, help="Overwrite the generated files in a non-empty --out.")
@click.option("--check", is_flag=True, help="Then run the original and the pipeline and compare their outputs.")
@handle_errors
def convert(notebook: str, out: str, by: str, level: int, at: str | None, dry_run: bool, force: bool,
            check: bool) -> None:
    """Turn one exploratory NOTEBOOK into a pipeline of task notebooks under --out."""
    from mlnb.convert import convert as run_convert

    cells = _cell_list(at)
    result = run_convert(notebook, out, by="cells" if cells else by, level=level, at=cells, dry_run=dry_run,
                         force=force)
    plan = result.plan
    click.echo(_table(result.rows, ["step", "cells", "inputs (var<step)", "outputs", "params"]))
    for line in plan.merges:
        click.echo(f"merge: {line}")
    for line in plan.warnings:
        click.echo(f"warning: {line}")
    if result.cwd:
        click.echo(f"note: tasks run in {result.cwd} (relative to {out}) because the notebook reads "
                   f"{', '.join(result.relative_paths[:3])} relative to its folder")
    if dry_run:
        click.echo(f"dry run: {len(plan.steps)} steps; nothing written")
        return
    click.echo(f"wrote {len(plan.steps)} task notebooks, pipeline.yaml and env.yaml to {result.out}")
    if check:
        from mlnb.convert.compare import check_conversion

        source = Path(notebook).resolve()
        os.chdir(result.out)  # CLI glue: Ploomber resolves task working directories against the cwd
        report = check_conversion(source, result.out)
        click.echo(report.describe())
        if not report.same:
            sys.exit(1)


@main.command()
@click.argument("notebook", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="Task name (default: the notebook's file name).")
@handle_errors
def add(notebook: str, name: str | None) -> None:
    """Add an existing NOTEBOOK as a task of the current pipeline.yaml."""
    from mlnb.convert.add import add_notebook

    path = Path(notebook).resolve()
    root = _root()
    result = add_notebook(root, path, name)
    click.echo(f"added task {result.name}: upstream {', '.join(result.upstream) or '(none)'}")
    for key, product in result.products.items():
        click.echo(f"  product {key}: {product}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    from mlnb.adapters.dvc import repo as versioning
    from mlnb.core.project import load_project

    if versioning.is_dvc_repo(root) and versioning.sync(load_project(root).spec).changed:
        click.echo(f"dvc.yaml regenerated: stage {result.name} added")


main.add_command(cli_export.export_group)
for _command in [*cli_data.COMMANDS, *cli_debug.COMMANDS, *cli_registry.COMMANDS, *cli_serve.COMMANDS,
                 cli_nbval.nbval_group, *cli_lineage.COMMANDS, *cli_settings.COMMANDS,
                 *cli_init.COMMANDS, *cli_sweep.COMMANDS, *cli_deploy.COMMANDS, *cli_canary.COMMANDS,
                 *cli_monitor.COMMANDS]:
    main.add_command(_command)

if __name__ == "__main__":
    main()
