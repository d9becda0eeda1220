"""``mlnb debug`` and ``mlnb accept``: a failed task where it failed, a cosmetic edit accepted
(CLI glue over :mod:`mlnb.services.debug` and :mod:`mlnb.services.explain`; exit codes as in :mod:`mlnb.cli.main`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

from mlnb.cli.kit import entry_point_option, handle_errors
from mlnb.cli.kit import project as _project
from mlnb.core import settings
from mlnb.core.io import shown

if TYPE_CHECKING:
    from mlnb.core.outcomes import FailureManifest


@click.command("debug")
@click.argument("task")
@click.option("--lab", is_flag=True, help="Start JupyterLab on the debug notebook.")
@click.option("--pdb", "use_pdb", is_flag=True, help="Restore the namespace here, run the failing cell on, and "
                                                     "drop into a post-mortem debugger at the error.")
@entry_point_option
@handle_errors
def debug_task(task: str, lab: bool, use_pdb: bool, entry_point: str | None) -> None:
    """Debug TASK where it failed: a notebook that restores its variables and runs from the failing cell."""
    from mlnb.services import debug

    project = _project(entry_point=entry_point)
    root, spec = project.root, project.spec
    if use_pdb:
        _post_mortem(*debug.pdb_plan(spec, task))
        return
    path = debug.write_debug_notebook(spec, task)
    rel = path.relative_to(root)
    click.echo(f"debug notebook: {rel} (run all cells: the failing cell raises the error again; MLflow runs "
               f"opened there go to {shown(settings.state_dir(root) / 'debug', root)}/, not to the project's "
               f"experiment)")
    url = running_lab_url(path)
    if url:
        click.echo(f"  open it in the running JupyterLab: {url}")
    elif lab:
        _start_lab(root, rel)
    else:
        click.echo(f"  no JupyterLab is running on this project: `make lab` or `mlnb debug {task} --lab` starts one")


def running_lab_url(path: Path) -> str | None:
    """The URL opening ``path`` in a running Jupyter server whose root directory holds it (the one
    closest to it), from jupyter_server's runtime files; None when there is none."""
    from jupyter_server.serverapp import list_running_servers

    found = []
    for info in list_running_servers():
        try:
            rel = path.resolve().relative_to(Path(info.get("root_dir") or "/").expanduser().resolve())
        except (ValueError, OSError):
            continue
        token = f"?token={info['token']}" if info.get("token") else ""
        found.append((len(rel.parts), f"{info['url'].rstrip('/')}/lab/tree/{quote(rel.as_posix())}{token}"))
    return min(found)[1] if found else None


def _start_lab(root: Path, rel: Path) -> None:
    """JupyterLab on the debug notebook (as `make lab` starts it: --allow-root only as root); its
    real URL once it is up, then wait for it."""
    from jupyter_core.paths import jupyter_runtime_dir

    args = [sys.executable, "-m", "jupyter", "lab", *(["--allow-root"] if os.getuid() == 0 else []),
            f"--ServerApp.root_dir={root}", str(root / rel)]  # the project, not the notebook's folder
    proc = subprocess.Popen(args, cwd=root)
    info = Path(jupyter_runtime_dir()) / f"jpserver-{proc.pid}.json"
    try:
        while proc.poll() is None:  # the server writes its runtime file once it listens
            if info.exists():
                url = running_lab_url(root / rel)
                if url:
                    click.echo(f"  JupyterLab started: {url}")
                    break
            time.sleep(0.2)
        proc.wait()
    except KeyboardInterrupt:  # Ctrl-C reached Jupyter too (same process group): let it shut down
        proc.wait()


def _post_mortem(found: FailureManifest, cells: list[dict[str, Any]], snapshot: Path | None) -> None:
    """CLI glue: run the prepared cells (:mod:`mlnb.services.replay`); the debugger on the first error."""
    import pdb
    import traceback

    from mlnb.services import replay

    plan = replay.prepare(found, cells, snapshot)
    if plan.restored:
        click.echo(f"restored the namespace before cell {plan.first}; running the cells from there")
    else:
        click.echo("the cells before the failing one are cheap: running the task's cells from the start")
    for label, src in plan.cells:
        try:
            exec(compile(src, label, "exec"), plan.namespace)  # the user's own notebook, at their request
        except Exception:
            traceback.print_exc()
            pdb.post_mortem(sys.exc_info()[2])
            return
    click.echo("the cells ran without an error this time")


def print_explanation(found: Any) -> None:
    if not found.outdated:
        click.echo(f"{found.task}: up to date")
        return
    label = "outdated, cosmetic changes only (`mlnb accept` records them)" if found.cosmetic_only else "outdated"
    click.echo(f"{found.task}: {label}")
    for change in found.changes:
        click.echo(f"  - {change.summary}")
        for line in change.diff.splitlines():
            click.echo(f"      {line}")


@click.command()
@click.argument("task")
@click.option("--force", is_flag=True, help="Accept a source change that is not cosmetic (outputs stay as they are).")
@entry_point_option
@handle_errors
def accept(task: str, force: bool, entry_point: str | None) -> None:
    """Mark TASK up to date after a cosmetic edit (comments, formatting, markdown) without re-running it."""
    from mlnb.services.explain import accept as accept_task

    found = accept_task(_project(entry_point=entry_point).spec, task, force=force)
    click.echo(f"accepted {len(found.changes)} change(s) to {task}: Ploomber's record now holds the current "
               f"source; {task} and its downstream tasks stay up to date")


COMMANDS = [debug_task, accept]
