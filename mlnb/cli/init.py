"""``mlnb init``: scaffold a new project, or add mlnb's files to a Ploomber project (CLI glue over
:mod:`mlnb.services.scaffold` and :mod:`mlnb.services.adopt`)."""

from __future__ import annotations

from pathlib import Path

import click

from mlnb.cli.kit import handle_errors


def _listed(label: str, paths: tuple[str, ...]) -> None:
    if paths:
        click.echo(f"{label} ({len(paths)}): {', '.join(paths)}")


@click.command("init")
@click.argument("directory", default=".", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Write into a non-empty DIRECTORY, replacing the scaffold's files "
                                            "there (listed); other files stay.")
@click.option("--from-ploomber", "from_ploomber", is_flag=True,
              help="DIRECTORY is a Ploomber project: add mlnb's params sections, .gitignore lines, CI templates, "
                   "Dockerfile and Makefile where absent; never touch its tasks.")
@handle_errors
def init_command(directory: Path, force: bool, from_ploomber: bool) -> None:
    """Start a project in DIRECTORY (default: here): pipeline.yaml, params.yaml (the gate), notebooks for
    load -> validate -> train -> evaluate -> export on a sample CSV, a data schema, DVC, CI templates, a
    Dockerfile and a Makefile. It builds as it is: `cd DIRECTORY && mlnb build --no-dvc`."""
    from mlnb.core.footprint import lines

    if from_ploomber:
        if force:
            raise click.UsageError("--force does not apply to --from-ploomber (it never overwrites a file)")
        from mlnb.services.adopt import adopt_project

        result = adopt_project(directory)
        click.echo(f"added mlnb to the Ploomber project {result.root} (its tasks untouched)")
    else:
        from mlnb.services.scaffold import init_project

        result = init_project(directory, force=force)
        click.echo(f"created the mlnb project {result.root}")
    _listed("wrote", result.written)
    _listed("overwrote", result.overwritten)
    _listed("appended to", result.appended)
    _listed("kept as they were", result.kept)
    for note in result.notes:
        click.echo(f"note: {note}")
    click.echo("builds write here (all git-ignored but dvc.lock):")
    for line in lines():
        click.echo(f"  {line}")
    if not from_ploomber:
        where = "" if result.root == Path.cwd().absolute() else f"cd {directory} && "
        click.echo(f"next: {where}mlnb build --no-dvc   (then put your CSV in data/raw/: see README.md)")


COMMANDS = [init_command]
