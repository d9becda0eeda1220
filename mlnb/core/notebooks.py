"""Read task notebooks and their ``parameters`` cell with static analysis (``ast``)."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.core.io import atomic_write
from mlnb.errors import NotebookError

PARAMETERS_TAG = "parameters"


@dataclass(frozen=True)
class TaskNotebook:
    path: Path
    upstream: tuple[str, ...]
    defaults: dict[str, Any]  # every name assigned in the parameters cell except upstream/product
    imports: tuple[str, ...]  # top-level modules imported anywhere in the notebook
    product: Any = None  # the parameters cell's literal product (what Ploomber's meta.extract_product reads)


def read_notebook(path: str | Path) -> dict[str, Any]:
    """Load a notebook as JSON; invalid JSON is a one-line error naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotebookError(f"{path}: cannot read notebook: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise NotebookError(f"{path}: not UTF-8 (byte {exc.start}): notebooks are UTF-8 JSON") from None
    try:
        nb = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise NotebookError(f"{path}: JSON nested too deeply to be a notebook") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise NotebookError(f"{path}: not a notebook (no 'cells' list)")
    return nb


def cell_source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _literal(node: ast.AST, path: Path, name: str) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError:
        if name == "upstream":  # Ploomber reads it statically too
            raise NotebookError(f"{path}: parameters cell: {name} must be a literal value") from None
        return None  # any expression is a valid default (as for Ploomber): its type is unknown here


def read_source_notebook(path: str | Path) -> dict[str, Any]:
    """A task's source as a notebook: an ``.ipynb`` file, or a jupytext ``.py`` script's cells."""
    path = Path(path)
    if path.suffix == ".py":
        from mlnb.core.sources import read_script

        return read_script(path)
    return read_notebook(path)


def parse_task_notebook(path: str | Path) -> TaskNotebook:
    """Find the cell tagged ``parameters`` and read ``upstream`` and the defaults.

    As lenient as Ploomber: ``product`` may be left out (Ploomber injects it), ``upstream`` may be a
    list, tuple, set or dict of task names (``"fit-*"`` wildcards included)."""
    path = Path(path)
    nb = read_source_notebook(path)
    cells = [c for c in nb["cells"] if c.get("cell_type") == "code"]
    params = [c for c in cells if PARAMETERS_TAG in (c.get("metadata", {}).get("tags") or [])]
    if not params:
        raise NotebookError(f"{path}: no cell tagged 'parameters' (add the tag to the cell declaring upstream/product)")
    try:
        tree = ast.parse(cell_source(params[0]))
    except SyntaxError as exc:
        raise NotebookError(f"{path}: parameters cell line {exc.lineno}: {exc.msg}") from None
    values: dict[str, Any] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name = stmt.targets[0].id
            values[name] = _literal(stmt.value, path, name)
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
            values[stmt.target.id] = _literal(stmt.value, path, stmt.target.id)
    upstream = values.pop("upstream", None)
    product = values.pop("product", None)
    if upstream is None:
        upstream = ()
    elif isinstance(upstream, set | frozenset) and all(isinstance(u, str) for u in upstream):
        upstream = tuple(sorted(upstream))
    elif isinstance(upstream, list | tuple) and all(isinstance(u, str) for u in upstream):
        upstream = tuple(upstream)
    elif isinstance(upstream, dict):
        upstream = tuple(upstream)
    else:
        raise NotebookError(f"{path}: parameters cell: upstream must be None or a list of task names")
    return TaskNotebook(path=path, upstream=upstream, defaults=values, imports=_imports(cells), product=product)


def _imports(cells: list[dict[str, Any]]) -> tuple[str, ...]:
    found: set[str] = set()
    for cell in cells:
        src = "\n".join(line for line in cell_source(cell).splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return tuple(sorted(found))


def stamp_run(path: str | Path, build_run_id: str, task: str, upstream: dict[str, Any] | None = None) -> None:
    """Record in an executed notebook which build ran it (``metadata.mlnb``), so JupyterLab's
    "Promote this run" button knows the run, and the content hashes of the upstream products it
    read (``mlnb status --explain`` compares them); written atomically."""
    nb = read_notebook(path)
    nb.setdefault("metadata", {})["mlnb"] = {"build_run_id": build_run_id, "task": task,
                                             **({"upstream": upstream} if upstream else {})}
    with atomic_write(path, encoding="utf-8") as fh:
        fh.write(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
