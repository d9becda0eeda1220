"""Commands for data and output versioning (DVC): ``mlnb dvc ...``, ``push``, ``pull``, ``remote``.

CLI glue over :mod:`mlnb.adapters.dvc.repo`; exit codes as in :mod:`mlnb.cli.main`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from mlnb.cli.kit import entry_point_option, handle_errors, project, root

if TYPE_CHECKING:
    from mlnb.core.spec import PipelineSpec


def _spec(entry_point: str | None) -> PipelineSpec:
    from mlnb.errors import UserInputError

    loaded = project(entry_point=entry_point)
    if loaded.spec.root != loaded.root:  # dvc.yaml, its stages and the repository live at the project root
        raise UserInputError(f"{loaded.spec.path.name}: its products resolve against "
                              f"{loaded.spec.root.relative_to(loaded.root)}/ (as Ploomber resolves them), not the "
                              "project root; DVC stages for such a spec are not supported yet (build with --no-dvc)")
    return loaded.spec


@click.group("dvc")
def dvc_group() -> None:
    """Keep dvc.yaml generated from pipeline.yaml, and record outputs in dvc.lock."""


@dvc_group.command("init")
@entry_point_option
@handle_errors
def dvc_init(entry_point: str | None) -> None:
    """Make this project a DVC repository (analytics off) and generate dvc.yaml."""
    from mlnb.adapters.dvc import repo

    result = repo.init(_spec(entry_point))
    click.echo(f"DVC repository ready (analytics off); {result.path.name} "
               f"{'written' if result.changed else 'already up to date'}. Track raw data with `dvc add data/raw`, "
               f"set a remote with `mlnb remote set PATH`.")


@dvc_group.command("sync")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 with a diff when dvc.yaml is out of date.")
@entry_point_option
@handle_errors
def dvc_sync(check: bool, entry_point: str | None) -> None:
    """Generate dvc.yaml (one stage per task) from pipeline.yaml."""
    from mlnb.adapters.dvc import repo

    result = repo.sync(_spec(entry_point), check=check)
    if not result.changed:
        click.echo(f"{result.path.name} is up to date with pipeline.yaml")
        return
    if check:
        click.echo(result.diff, nl=False)
        click.echo(f"mlnb: error: {result.path.name} is out of date with pipeline.yaml: run `mlnb dvc sync`",
                   err=True)
        sys.exit(1)
    click.echo(result.diff, nl=False)
    click.echo(f"wrote {result.path.name}")


@dvc_group.command("commit")
@entry_point_option
@handle_errors
def dvc_commit(entry_point: str | None) -> None:
    """Record the outputs of up-to-date tasks in dvc.lock and the DVC cache (nothing re-runs)."""
    from mlnb.adapters.dvc import repo
    from mlnb.services.status import current_tasks

    spec = _spec(entry_point)
    loaded = project(entry_point=entry_point)
    current = current_tasks(loaded)
    recorded = repo.commit(spec, up_to_date=current)
    skipped = [name for name in spec.tasks if name not in current]
    click.echo(f"recorded in DVC (dvc.lock): {', '.join(recorded) or 'nothing'}"
               + (f"; not recorded (outdated: run `mlnb build`): {', '.join(skipped)}" if skipped else ""))


@click.command()
@handle_errors
def push() -> None:
    """Upload raw data and task outputs to the DVC remote."""
    from mlnb.adapters.dvc import repo

    here = root()
    click.echo("pushing to the DVC remote ...", err=True)
    remote, summary = repo.push(here)
    click.echo(f"pushed to {remote.name!r} ({remote.url}): {summary}")


@click.command()
@handle_errors
def pull() -> None:
    """Download raw data and task outputs from the DVC remote, verifying every object's hash."""
    from mlnb.adapters.dvc import repo

    here = root()
    click.echo("pulling from the DVC remote ...", err=True)
    remote, summary, repaired = repo.pull(here)
    if repaired:
        click.echo(f"replaced {repaired} corrupted object(s) in the local DVC cache with the remote's copy", err=True)
    click.echo(f"pulled from {remote.name!r} ({remote.url}): {summary}; every object verified")


@click.group("remote")
def remote_group() -> None:
    """Where `mlnb push`/`pull` keep data (configured in .dvc/config.local, never committed)."""


@remote_group.command("set")
@click.argument("url")
@click.option("--name", default="mlnb", show_default=True, help="DVC remote name.")
@handle_errors
def remote_set(url: str, name: str) -> None:
    """Use URL (a directory, or s3://, gs://, ssh://, ...) as the default remote."""
    from mlnb.adapters.dvc import repo

    remote = repo.set_remote(root(), url, name)
    click.echo(f"default DVC remote {remote.name!r}: {remote.url} (in .dvc/config.local; hash verification on)")


@remote_group.command("show")
@handle_errors
def remote_show() -> None:
    """Print the default remote."""
    from mlnb.adapters.dvc import repo

    remote = repo.remote(root())
    click.echo(f"{remote.name}\t{remote.url}" if remote else "no DVC remote configured: `mlnb remote set PATH`")


COMMANDS = [dvc_group, push, pull, remote_group]
