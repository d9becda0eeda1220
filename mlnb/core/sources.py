"""Task sources other than ``.ipynb`` notebooks, read statically (pure: no Ploomber, nothing imported).

Ploomber runs three kinds of task from a spec's ``source``:

* notebooks (``.ipynb``) and scripts (``.py`` in jupytext's *percent* ``# %%`` or *light* ``# +``
  format), both executed as notebooks; :func:`read_script` gives a script's cells as a notebook;
* Python functions by dotted path (``tasks.get``), run as plain calls; :func:`resolve_function`
  finds the module file inside the project and the upstream names the function reads
  (``upstream["name"]``, as Ploomber's own static analysis does);
* anything else with a file (``.sql``, ``.R``, ...), left to Ploomber.
"""

from __future__ import annotations

import ast
import getpass
import re
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from mlnb.errors import NotebookError, SpecError

NOTEBOOK, SCRIPT, FUNCTION, OTHER = "notebook", "script", "function", "other"
SCRIPT_SUFFIXES = {".py"}
_FILE_SUFFIXES = {".ipynb", ".py", ".sql", ".r", ".rmd", ".md", ".sh", ".csv", ".parquet"}
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_CELL = re.compile(r"^# (%%|\+)(.*)$")
_TAGS = re.compile(r"tags\s*=\s*\[([^\]]*)\]")


def kind_of(root: Path, source: str) -> str:
    """The kind of task ``source`` names (a file that exists wins over a dotted path)."""
    path = root / source
    if path.is_file() or Path(source).suffix.lower() in _FILE_SUFFIXES or not _DOTTED.match(source):
        suffix = path.suffix.lower()
        return NOTEBOOK if suffix == ".ipynb" else SCRIPT if suffix in SCRIPT_SUFFIXES else OTHER
    return FUNCTION


def read_script(path: Path) -> dict[str, Any]:
    """A jupytext percent/light ``.py`` script as a notebook dict (cells, their tags), as Ploomber sees it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"{path}: cannot read script: {exc}") from None
    cells: list[dict[str, Any]] = []
    current: list[str] = []
    tags: list[str] = []

    def close() -> None:
        while current and not current[-1].strip():
            current.pop()
        if current or tags:
            cells.append({"cell_type": "code", "metadata": {"tags": list(tags)}, "source": "\n".join(current)})

    for line in text.splitlines():
        marker = _CELL.match(line)
        if marker:
            close()
            current, found = [], _TAGS.search(marker.group(2))
            tags = [t.strip().strip("'\"") for t in found.group(1).split(",") if t.strip()] if found else []
        elif line.strip() == "# -" and tags:  # the end of a light-format cell
            close()
            current, tags = [], []
        else:
            current.append(line)
    close()
    return {"cells": [c for c in cells if c["source"].strip() or c["metadata"]["tags"]], "metadata": {}}


def resolve_function(root: Path, dotted: str) -> tuple[Path | None, tuple[str, ...]]:
    """The project file defining function ``dotted`` (None: not in the project, e.g. an installed
    package) and the upstream names its body reads as ``upstream["name"]``."""
    module, _, name = dotted.rpartition(".")
    parts = module.split(".")
    for base in (root, root / "src"):
        for candidate in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
            if candidate.is_file():
                return candidate, _function_upstream(candidate, name)
    return None, ()


def _function_upstream(path: Path, name: str) -> tuple[str, ...]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return ()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            if "upstream" not in {a.arg for a in [*node.args.args, *node.args.kwonlyargs]}:
                return ()
            found = [sub.slice.value for sub in ast.walk(node)
                     if isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name)
                     and sub.value.id == "upstream" and isinstance(sub.slice, ast.Constant)
                     and isinstance(sub.slice.value, str)]
            return tuple(dict.fromkeys(found))
    return ()


def loader_dirs(root: Path, meta: Any, where: str) -> list[Path]:
    """The folders of ``meta.source_loader`` (``path``: one or a list, relative to the project root, or to the
    folder of the package ``module`` names), where Ploomber looks up every relative file source."""
    loader = meta.get("source_loader") if isinstance(meta, dict) else None
    if loader is None:
        return []
    if not isinstance(loader, dict) or not ({"path", "module"} & set(loader)) or set(loader) - {"path", "module"}:
        raise SpecError(f"{where}: meta.source_loader: expected a mapping with 'path' and/or 'module', got {loader!r}")
    base = root
    module = loader.get("module")
    if module is not None:
        parts = str(module).split(".")
        found = [d for d in (root.joinpath(*parts), root.joinpath("src", *parts)) if (d / "__init__.py").is_file()]
        if not found:
            raise SpecError(f"{where}: meta.source_loader.module: {module!r} is not a package in the project")
        base = found[0]
    paths = loader.get("path") or ""
    return [(base / str(p)).resolve() for p in (paths if isinstance(paths, list) else [paths])]


def from_loader(dirs: list[Path], source: str) -> Path | None:
    """The file a relative ``source`` names in the source loader's folders (None: in none of them)."""
    if Path(source).is_absolute():
        return None
    return next((d / source for d in dirs if (d / source).is_file()), None)


def builtin_placeholders(root: Path, spec_dir: Path | None = None) -> dict[str, Callable[[], str]]:
    """Ploomber's built-in placeholders (``{{root}}``: the project root, ``{{here}}``: the spec's folder,
    ...), each computed when used.

    ``{{git}}`` is the branch (else the commit) and ``{{git_hash}}`` ``git describe --tags --always
    --dirty=-dirty``, asked of git exactly as Ploomber asks (a tag, ``-dirty`` and any ref storage
    included); read from ``.git`` by hand only where git is not installed."""
    here = spec_dir or root
    return {"root": lambda: str(root), "here": lambda: str(here), "cwd": lambda: str(Path.cwd()),
            "user": getpass.getuser, "now": lambda: datetime.now().isoformat(),
            "git": lambda: _git(here)[0], "git_hash": lambda: _git(here)[1]}


_TEMPLATE_UPSTREAM = re.compile(r"""\{\{\s*upstream\s*\[\s*['"]([^'"]+)['"]\s*\]""")


def template_upstream(path: Path) -> tuple[str, ...]:
    """The upstream names a templated source (``.sql``, ...) reads as ``{{upstream['name']}}`` (as Ploomber's
    own extraction finds them); none for notebooks and scripts, whose parameters cell declares them."""
    if path.suffix.lower() in (".ipynb", *SCRIPT_SUFFIXES):
        return ()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ()
    return tuple(dict.fromkeys(_TEMPLATE_UPSTREAM.findall(text)))


def _git(start: Path) -> tuple[str, str]:
    try:
        described = _run_git(start, "describe", "--tags", "--always", "--dirty=-dirty")
    except FileNotFoundError:  # no git on this machine: what .git says
        return _read_git(start)
    if described is None:
        raise KeyError("git")
    branch = _run_git(start, "symbolic-ref", "--short", "HEAD")
    return branch or described, described


def _run_git(cwd: Path, *args: str) -> str | None:
    """git's answer (stripped), None when git says no (not a repository, no commit, detached HEAD)."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except subprocess.SubprocessError:
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _read_git(start: Path) -> tuple[str, str]:
    for folder in (start, *start.parents):
        head = folder / ".git" / "HEAD"
        if head.is_file():
            ref = head.read_text(encoding="utf-8").strip()
            if not ref.startswith("ref: "):
                return ref, ref[:7]
            name = ref[5:]
            target = folder / ".git" / name
            commit = target.read_text(encoding="utf-8").strip() if target.is_file() else _packed(folder, name)
            return name.removeprefix("refs/heads/"), commit[:7]
    raise KeyError("git")


def _packed(folder: Path, ref: str) -> str:
    packed = folder / ".git" / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    return "unborn"

