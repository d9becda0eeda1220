"""What a pipeline's notebooks import, found statically (pure: nothing is imported or run).

The fork server pre-imports these once so each task's kernel starts with them in memory.
Imports inside project modules the notebooks use (``mlnb`` itself, or a module under the
project root) are followed one level, because such modules often import lazily inside
functions (``from sklearn.ensemble import ...`` in ``make_model``).

The project's own modules are followed but never pre-imported themselves: their import-time
code may read files that earlier tasks of the build rewrite. Modules that are unsafe to import
before ``fork()`` (they start threads or pick a GUI
backend at import) are never pre-imported: the task imports them itself, as it would anyway.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from mlnb.core.notebooks import cell_source, read_source_notebook

# Start threads/pools at import, bind a GUI/plot backend, or are pointless to share.
UNSAFE = ("matplotlib", "pylab", "seaborn", "plotly", "bokeh", "torch", "tensorflow", "keras", "jax",
          "ray", "dask", "pyspark", "multiprocessing", "concurrent", "threading", "asyncio", "tkinter",
          "IPython", "ipykernel", "ipywidgets", "papermill", "ploomber", "pytest", "__main__", "this",
          "antigravity")
# Imported lazily by a package the notebook imports, on the paths notebooks commonly take
# (pandas.read_parquet, MLflow's SQLite tracking store): pre-imported when installed.
COMPANIONS = {
    "pandas": ("pyarrow", "pyarrow.parquet"),
    "mlflow": ("mlflow.store.tracking.sqlalchemy_store", "mlflow.store.model_registry.sqlalchemy_store"),
}
_MAGIC = re.compile(r"^\s*[%!?]")


def _cell_imports(source: str) -> list[str]:
    code = "\n".join("" if _MAGIC.match(line) else line for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return _tree_imports(tree)


def _tree_imports(tree: ast.AST) -> list[str]:
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            out.append(node.module)
            out.extend(f"{node.module}.{a.name}" for a in node.names  # `from pkg import submodule`
                       if a.name != "*" and module_file(f"{node.module}.{a.name}") is not None)
    return out


def is_safe(name: str) -> bool:
    top = name.split(".")[0]
    return top not in UNSAFE and top not in sys.builtin_module_names and name.replace(".", "").isidentifier()


def _local_source(name: str, roots: tuple[Path, ...]) -> Path | None:
    """The source file of ``name`` when it is a project module (under one of ``roots``)."""
    parts = name.split(".")
    in_project = [roots[0].joinpath(*parts).with_suffix(".py"), roots[0].joinpath(*parts, "__init__.py")]
    path = next((p for p in in_project if p.is_file()), None) or module_file(name)  # kernels run in the root
    if path is None:
        return None
    resolved = path.resolve()
    return resolved if any(resolved.is_relative_to(r) for r in roots) else None


def module_file(name: str) -> Path | None:
    """The ``.py`` file of module ``name``, found without importing anything (``find_spec("a.b")``
    would import ``a``: only the top-level package is looked up, the rest is a path)."""
    top, *rest = name.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None:
        return None
    if not rest:
        candidates = [Path(spec.origin)] if spec.origin else []
    else:
        bases = [Path(p) for p in (spec.submodule_search_locations or [])]
        candidates = [c for b in bases for c in (b.joinpath(*rest).with_suffix(".py"),
                                                  b.joinpath(*rest, "__init__.py"))]
    return next((c for c in candidates if c.suffix == ".py" and c.is_file()), None)


def _is_project_file(path: Path, project_root: Path, mlnb_dir: Path) -> bool:
    """A module of the project itself (not mlnb, not an installed package): never pre-imported,
    since its import-time code may read the project's files, which earlier tasks may change."""
    return path.is_relative_to(project_root) and not path.is_relative_to(mlnb_dir)


def notebook_imports(notebooks: Iterable[Path], project_root: Path) -> list[str]:
    """Module names the notebooks import, in first-seen order, unsafe ones left out."""
    roots = (project_root.resolve(), Path(__file__).resolve().parents[1])  # the project and mlnb itself
    found: list[str] = []
    for path in notebooks:
        try:
            nb = read_source_notebook(path)
        except Exception:
            continue
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "code":
                found.extend(_cell_imports(cell_source(cell)))
    seen: dict[str, None] = {}
    for name in found:
        if not is_safe(name) or name in seen:
            continue
        local = _local_source(name, roots)
        if local is None or not _is_project_file(local, roots[0], roots[1]):
            seen[name] = None
        if local is not None:  # follow a project module's own (often lazy) imports, one level
            try:
                tree = ast.parse(local.read_text(encoding="utf-8"))
            except (OSError, SyntaxError, UnicodeDecodeError):
                continue
            for inner in _tree_imports(tree):
                inner_local = _local_source(inner, roots)
                if is_safe(inner) and inner not in seen and (
                        inner_local is None or not _is_project_file(inner_local, roots[0], roots[1])):
                    seen[inner] = None
    for name, extra in COMPANIONS.items():
        if name in seen:
            seen.update((m, None) for m in extra if module_file(m) is not None)
    return list(seen)
