"""Which pipeline a command builds: Ploomber's entry points, resolved statically (pure: nothing imported).

As ``ploomber build [--entry-point X]`` finds them:

* no ``--entry-point``: the nearest ``pipeline.yaml`` at or above the working directory, or, in a
  package (a ``setup.py`` beside ``src/``), ``src/<package>/pipeline.yaml``;
* ``--entry-point other.yaml``: that spec file (``pipeline.serve.yaml`` reads ``env.serve.yaml`` when it
  exists, else ``env.yaml``, as Ploomber pairs them);
* ``--entry-point pkg.module.make_dag``: a Python factory returning a DAG (so does a spec whose
  top level is ``location: pkg.module.make_dag``); its tasks are read from the DAG it returns;
* directory mode (``'*.py'``, a folder) is not supported yet: one line says so.

Relative product paths are relative to the project root (the working directory of the build, where
``setup.py`` is in a package); task sources to the spec file's folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from mlnb.errors import UserInputError

SPEC_FILE = "pipeline.yaml"
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


@dataclass(frozen=True)
class EntryPoint:
    """A resolved entry point: a spec file (``path``) or a Python factory (``factory``, a dotted path)."""

    root: Path  # the project root: products are relative to it, the build runs in it
    path: Path | None = None
    factory: str | None = None

    @property
    def env_name(self) -> str:
        """The env file Ploomber pairs with the spec: ``env.serve.yaml`` for ``pipeline.serve.yaml``."""
        if self.path is not None:
            parts = self.path.name.split(".")
            if len(parts) == 3 and parts[0] == "pipeline" and parts[2] in ("yaml", "yml"):
                if (self.root / f"env.{parts[1]}.yaml").is_file():
                    return f"env.{parts[1]}.yaml"
        return "env.yaml"

    @property
    def spec_name(self) -> str:
        """How error messages name it: the spec file relative to the root, or the factory's dotted path."""
        if self.path is None:
            return str(self.factory)
        return str(self.path.relative_to(self.root)) if self.path.is_relative_to(self.root) else str(self.path)


def _package_spec(folder: Path) -> Path | None:
    """``src/<package>/pipeline.yaml`` of a package project (a ``setup.py`` in ``folder``)."""
    if not (folder / "setup.py").is_file():
        return None
    found = sorted((folder / "src").glob(f"*/{SPEC_FILE}"))
    return found[0] if found else None


def find_default(start: str | os.PathLike[str] | None = None) -> EntryPoint:
    """The default entry point at or above ``start`` (the working directory), as Ploomber looks it up."""
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        package = _package_spec(candidate)
        if package is not None:
            return EntryPoint(candidate, package.resolve())
        if (candidate / SPEC_FILE).is_file():
            return EntryPoint(candidate, candidate / SPEC_FILE)
    raise UserInputError(f"{here}: no {SPEC_FILE} here or in any parent directory "
                         f"(nor src/<package>/{SPEC_FILE} beside a setup.py)")


def resolve(given: str | None, cwd: str | os.PathLike[str] | None = None) -> EntryPoint:
    """The entry point ``--entry-point given`` names (None: :func:`find_default`), relative to ``cwd``."""
    if given is None:
        return find_default(cwd)
    here = Path(cwd or os.getcwd()).resolve()
    path = here / given
    if any(c in given for c in "*?[") or path.is_dir():
        raise UserInputError(f"--entry-point: {given!r}: directory mode (a folder or a glob of scripts) is not "
                             "supported by mlnb yet; use a spec file or a factory's dotted path")
    if path.is_file():
        return EntryPoint(here, path.resolve())
    if Path(given).suffix in (".yaml", ".yml"):
        raise UserInputError(f"--entry-point: {given!r}: no such spec file")
    if _DOTTED.match(given):
        return EntryPoint(here, factory=given)
    raise UserInputError(f"--entry-point: {given!r}: neither a spec file nor a dotted path (pkg.module.function)")
