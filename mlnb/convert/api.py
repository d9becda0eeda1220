"""Convert a notebook into a pipeline directory: the entry point behind ``mlnb convert``."""

from __future__ import annotations

import ast
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from mlnb.convert.plan import Plan, make_plan
from mlnb.convert.render import summary_rows, write_project
from mlnb.convert.split import split
from mlnb.core.notebooks import read_notebook
from mlnb.errors import ConvertError

GENERATED = ("pipeline.yaml", "env.yaml", "notebooks", ".gitignore")


@dataclass
class ConvertResult:
    plan: Plan
    out: Path
    rows: list[list[str]]
    cwd: str | None = None
    relative_paths: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)


def _relative_paths(plan: Plan, src_dir: Path) -> list[str]:
    """String literals in the code that name files relative to the notebook's folder."""
    found = []
    for cell in plan.code.values():
        for node in ast.walk(cell.tree()):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and 0 < len(node.value) < 260:
                text = node.value
                if "\n" in text or text in (".", "..") or os.path.isabs(text) or ("/" not in text and "." not in text):
                    continue
                try:
                    if (src_dir / text).exists():
                        found.append(text)
                except OSError:
                    continue
    return sorted(set(found))


def load_notebook(path: Path) -> dict[str, Any]:
    """The notebook as an nbformat 4 dict (older formats upgraded)."""
    nb = read_notebook(path) if path.suffix == ".ipynb" else {}
    if nb.get("nbformat", 4) < 4 or not nb:
        try:
            nb = dict(nbformat.read(str(path), as_version=4))
        except Exception as exc:  # nbformat raises many types for unreadable input
            raise ConvertError(f"{path}: cannot read as a notebook: {exc}") from None
    return nb


def kernel_for(nb: dict[str, Any]) -> tuple[dict[str, str], str]:
    """The notebook's kernelspec if installed here, else ``python3`` (and a warning saying so)."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = dict(nb.get("metadata", {}).get("kernelspec") or {})
    installed = KernelSpecManager().find_kernel_specs()
    if spec.get("name") in installed:
        return spec, ""
    fallback = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if spec.get("language", "python").lower() != "python":
        raise ConvertError(f"kernelspec {spec.get('name')!r}: only Python notebooks can be converted")
    return fallback, (f"kernel {spec.get('name')!r} is not installed here: the pipeline uses 'python3'"
                      if spec.get("name") else "")


def plan_notebook(path: Path, by: str = "headings", level: int = 2, at: list[int] | None = None,
                  nb: dict[str, Any] | None = None) -> Plan:
    nb = nb if nb is not None else load_notebook(path)
    cells = nb.get("cells", [])
    if not cells:
        raise ConvertError(f"{path}: the notebook has no cells")
    return make_plan(cells, split(cells, by=by, level=level, at=at))


def _replace(new: Path, target: Path) -> None:
    """Move ``new`` over ``target`` (a file, or a folder swapped in one rename)."""
    old = None
    if target.exists() and target.is_dir() and not target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old)


def convert(path: str | Path, out: str | Path, *, by: str = "headings", level: int = 2, at: list[int] | None = None,
            dry_run: bool = False, force: bool = False) -> ConvertResult:
    """Convert the notebook at ``path`` into a pipeline under ``out`` (unless ``dry_run``)."""
    path = Path(path).resolve()
    out = Path(out).resolve()
    if not path.is_file():
        raise ConvertError(f"{path}: no such notebook")
    if at:
        by = "cells"
    elif by == "cells":
        raise ConvertError("--at: give the cell indices where steps start, e.g. --at 5,12")
    nb = load_notebook(path)
    kernelspec, kernel_warning = kernel_for(nb)
    nb.setdefault("metadata", {})["kernelspec"] = kernelspec
    plan = plan_notebook(path, by, level, at, nb)
    if kernel_warning:
        plan.warnings.append(kernel_warning)
    src_dir = path.parent
    rel = _relative_paths(plan, src_dir)
    cwd = os.path.relpath(src_dir, out) if rel and src_dir != out else None
    result = ConvertResult(plan, out, summary_rows(plan), cwd, rel)
    if dry_run:
        return result
    if out / "notebooks" in path.parents:
        raise ConvertError(f"--out {out}: the source notebook is inside {out / 'notebooks'}, which convert replaces")
    if out.exists() and not out.is_dir():
        raise ConvertError(f"--out {out}: exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not force:
        raise ConvertError(f"--out {out}: directory is not empty (use --force to overwrite the generated files)")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".mlnb-convert-", dir=out))
    try:
        write_project(plan, nb, tmp, os.path.relpath(path, out), cwd)
        for name in GENERATED:  # each generated file replaces the old one in one rename
            target = out / name
            if (tmp / name).is_dir() and target.is_dir() and not target.is_symlink():
                # a folder the user also writes in (notebooks/): replace our files, keep theirs
                kept = sorted(p.name for p in target.iterdir() if not (tmp / name / p.name).exists())
                for child in sorted((tmp / name).iterdir()):
                    _replace(child, target / child.name)
                plan.warnings += [f"kept {name}/{k}: not written by this conversion" for k in kept]
                continue
            old = None
            if target.exists():
                old = out / f".{name}.old-{os.getpid()}"
                os.replace(target, old)
            os.replace(tmp / name, target)
            if old is not None:
                shutil.rmtree(old) if old.is_dir() else old.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.written = [out / g for g in GENERATED]
    return result
