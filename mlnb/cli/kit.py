"""Helpers shared by the click command modules (CLI glue only)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlnb.core.config import ENV_PREFIX
from mlnb.errors import MlnbError, redact

if TYPE_CHECKING:
    from mlnb.core.project import Project


def fail(message: str, code: int) -> None:
    click.echo(f"mlnb: error: {redact(message)}", err=True)
    sys.exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn mlnb errors into one line on stderr and the documented exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MlnbError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:  # outside a build's tasks (they handle Ctrl-C themselves)
            fail("interrupted (Ctrl-C)", 130)

    return wrapper


def env_overrides(extra: list[str]) -> tuple[str, ...]:
    """Ploomber's ``--env--KEY VALUE`` (or ``--env--KEY=VALUE``; ``--env--a--b`` is the nested key ``a.b``)
    as overrides (``--env--KEY=VALUE``, read as ``-p`` ones and named as typed in errors); any other leftover
    argument is a usage error, as click says it."""
    out: list[str] = []
    args = list(extra)
    while args:
        arg = args.pop(0)
        if not arg.startswith(ENV_PREFIX) or len(arg) == len(ENV_PREFIX):
            raise click.UsageError(f"No such option: {arg}" if arg.startswith("-") else f"Got unexpected extra "
                                   f"argument ({arg})")
        _, eq, _ = arg.partition("=")
        if not eq:
            if not args:
                raise click.UsageError(f"Option '{arg}' requires an argument.")
            arg = f"{arg}={args.pop(0)}"
        out.append(arg)
    return tuple(out)


ENTRY_HELP = ("Another spec file (pipeline.serve.yaml), a factory (pkg.module.make_dag) or scripts ('tasks/*.py'), "
              "as Ploomber's.")


def entry_point_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--entry-point``/``-e`` (Ploomber's), passed as ``entry_point``; ``ENTRY_POINT`` when not given."""
    return click.option("--entry-point", "-e", "entry_point", metavar="SPEC|DOTTED.PATH|GLOB", help=ENTRY_HELP)(fn)


def root(entry_point: str | None = None) -> Path:
    """The project root (made the working directory): the directory of ``pipeline.yaml`` (or of a package's
    ``setup.py``) at or above the working directory; with ``--entry-point``, the working directory."""
    from mlnb.core import settings
    from mlnb.core.entry import resolve

    found = resolve(entry_point, variable=settings.get("ENTRY_POINT")).root
    os.chdir(found)  # CLI glue: Ploomber resolves resources_ paths against the working directory
    return found


def project(env_file: str | None = None, overrides: tuple[str, ...] = (), entry_point: str | None = None) -> Project:
    """The project at or above the working directory (made the working directory), loaded once for
    the command (:class:`mlnb.core.project.Project`); a factory's tasks are read by Ploomber's adapter."""
    from mlnb.adapters.ploomber.factory import spec_from_factory
    from mlnb.core.project import load_project

    return load_project(root(entry_point), env_file, overrides, entry_point, spec_from_factory)


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*(str(x) for x in r)) for r in rows]
    return "\n".join(lines)


# Imported eagerly, under try/except ImportError, by libraries the build/status commands load,
# and never used by these commands (their notebooks run in kernels, other processes):
SLOW_OPTIONAL = (
    "rfc3987_syntax",  # jsonschema (nbformat, Ploomber): builds a grammar for the "iri" format, ~0.8 s
    "matplotlib",  # ploomber-engine's profiling plots, loaded by papermill's engine entry points: ~0.3 s
)


def skip_slow_optional_imports() -> None:
    """For the build/status commands only: mark :data:`SLOW_OPTIONAL` unavailable, so the
    ``except ImportError`` branch their importers already have is taken instead of a slow import."""
    for name in SLOW_OPTIONAL:
        sys.modules.setdefault(name, None)  # type: ignore[assignment]


def exit_now(code: int) -> None:
    """Exit after the atexit handlers (MLflow flushes there) without the interpreter's teardown of
    every loaded module, which takes ~0.8 s once Ploomber, MLflow and pandas are imported."""
    import atexit

    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
