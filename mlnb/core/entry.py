"""Which pipeline a command builds: Ploomber's entry points, resolved statically (pure: nothing imported).

As ``ploomber build [--entry-point X]`` finds them:

* no ``--entry-point``: the nearest ``pipeline.yaml`` at or above the working directory, or, in a
  package (a ``setup.py`` beside ``src/``), ``src/<package>/pipeline.yaml``;
* ``--entry-point other.yaml``: that spec file (``pipeline.serve.yaml`` reads ``env.serve.yaml`` when it
  exists, else ``env.yaml``, as Ploomber pairs them);
* ``--entry-point pkg.module.make_dag``: a Python factory returning a DAG (so does a spec whose
  top level is ``location: pkg.module.make_dag``); its tasks are read from the DAG it returns;
* directory mode (``--entry-point .``, ``--entry-point 'tasks/*.py'``): a task per script or notebook,
  its product and upstream read from its parameters cell (:func:`mlnb.core.spec.load_files_spec`);
* without ``--entry-point``, the ``ENTRY_POINT`` environment variable, then the ``entry-point`` of the
  ``[ploomber]`` section of the nearest ``setup.cfg``, as Ploomber reads them.

Relative product paths are relative to the project root (the working directory of the build, where
``setup.py`` is in a package); task sources to the spec file's folder.
"""

from __future__ import annotations

import configparser
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
    files: str | None = None  # directory mode: a folder or a glob, relative to root

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
            return str(self.factory or self.files)
        return str(self.path.relative_to(self.root)) if self.path.is_relative_to(self.root) else str(self.path)


def products_root(spec: Path) -> Path:
    """The folder a spec's relative products are resolved against, as Ploomber finds it: the spec's own
    folder, or, for a spec inside ``src/<package>/``, the folder of the package's ``setup.py``."""
    folder = spec.resolve().parent
    if folder.parent.name == "src":
        for candidate in (*folder.parents,)[:6]:
            if (candidate / "setup.py").is_file():
                return candidate
    return folder


def _package_spec(folder: Path) -> Path | None:
    """``src/<package>/pipeline.yaml`` of a package project (a ``setup.py`` in ``folder``)."""
    if not (folder / "setup.py").is_file():
        return None
    found = sorted((folder / "src").glob(f"*/{SPEC_FILE}"))
    return found[0] if found else None


def _configured(here: Path) -> EntryPoint | None:
    """The ``entry-point`` of ``[ploomber]`` in the nearest ``setup.cfg`` (Ploomber looks 6 levels up)."""
    for folder in (here, *here.parents)[:7]:
        cfg = folder / "setup.cfg"
        if not cfg.is_file():
            continue
        parser = configparser.ConfigParser()
        try:
            parser.read(cfg, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise UserInputError(f"{cfg}: not a valid setup.cfg: {str(exc).splitlines()[0]}") from None
        given = parser.get("ploomber", "entry-point", fallback=None)
        if not given:
            return None
        if not (folder / given).is_file():
            raise UserInputError(f"{cfg}: [ploomber] entry-point: {given!r}: no such spec file")
        return EntryPoint(folder, (folder / given).resolve())
    return None


def find_default(start: str | os.PathLike[str] | None = None, variable: str | None = None) -> EntryPoint:
    """The default entry point at or above ``start`` (the working directory), as Ploomber looks it up:
    ``variable`` (the ``ENTRY_POINT`` environment variable) when set, a ``setup.cfg`` naming one, the
    nearest ``pipeline.yaml`` or a package's ``src/<package>/pipeline.yaml``."""
    here = Path(start or os.getcwd()).resolve()
    if variable:
        try:
            return resolve(variable, here)
        except UserInputError as exc:
            raise UserInputError(f"ENTRY_POINT{str(exc).removeprefix('--entry-point')}") from None
    configured = _configured(here)
    if configured is not None:
        return configured
    for candidate in (here, *here.parents):
        package = _package_spec(candidate)
        if package is not None:
            return EntryPoint(candidate, package.resolve())
        if (candidate / SPEC_FILE).is_file():
            return EntryPoint(candidate, candidate / SPEC_FILE)
    raise UserInputError(f"{here}: no {SPEC_FILE} here or in any parent directory "
                         f"(nor src/<package>/{SPEC_FILE} beside a setup.py)")


def resolve(given: str | None, cwd: str | os.PathLike[str] | None = None, variable: str | None = None) -> EntryPoint:
    """The entry point ``--entry-point given`` names (None: :func:`find_default` with ``variable``, the
    ``ENTRY_POINT`` environment variable), relative to ``cwd``."""
    if given is None:
        return find_default(cwd, variable)
    here = Path(cwd or os.getcwd()).resolve()
    path = here / given
    if any(c in given for c in "*?[") or path.is_dir():
        if not path.resolve().is_relative_to(here) and not any(c in given for c in "*?["):
            raise UserInputError(f"--entry-point: {given!r}: directory mode takes a folder inside the project")
        return EntryPoint(here, files=given)
    if path.is_file():
        return EntryPoint(here, path.resolve())
    if Path(given).suffix in (".yaml", ".yml"):
        raise UserInputError(f"--entry-point: {given!r}: no such spec file")
    if _DOTTED.match(given):
        return EntryPoint(here, factory=given)
    raise UserInputError(f"--entry-point: {given!r}: neither a spec file nor a dotted path (pkg.module.function)")
