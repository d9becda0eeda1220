"""Pipelines made by a Python factory (part of the Ploomber seam): ``--entry-point pkg.module.make_dag`` or a
spec whose top level is ``location: pkg.module.make_dag``.

Ploomber calls the factory and builds the DAG it returns; mlnb reads the tasks off that DAG into its own
:class:`~mlnb.core.spec.PipelineSpec` (names, sources, file products, params, upstream), so status, the
build's outcomes, MLflow child runs and the failure quarantine work as for a spec file. mlnb's static
checks of a spec (params against parameters cells, ...) do not apply: the factory's code is the spec.
As with ``ploomber build --entry-point pkg.module.make_dag``, the factory is called without arguments.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

from mlnb.core import sources
from mlnb.core.entry import EntryPoint
from mlnb.core.spec import PipelineSpec, TaskSpec
from mlnb.errors import SpecError


def make_dag(factory: str, root: Path, spec_dir: Path | None = None) -> Any:
    """Call ``factory`` (a dotted path, importable from ``root`` or the spec's folder): Ploomber's DAG."""
    from ploomber.util import dotted_path

    for folder in (spec_dir, root):
        if folder is not None and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    try:
        dag = dotted_path.call_dotted_path(factory)
    except Exception as exc:
        raise SpecError(f"{factory}: the factory failed: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if not hasattr(dag, "render") or not hasattr(dag, "build"):
        raise SpecError(f"{factory}: the factory must return a ploomber DAG, got {type(dag).__name__}")
    return dag


def spec_from_factory(entry: EntryPoint, factory: str, env: dict[str, Any]) -> PipelineSpec:
    """The tasks of the DAG ``factory`` returns, as mlnb's spec (``env`` is not passed: Ploomber passes none)."""
    spec_dir = entry.path.parent if entry.path is not None else None
    dag = make_dag(factory, entry.root, spec_dir)
    tasks = {name: _task(dag[name], entry.root) for name in dag}  # Ploomber iterates in topological order
    path = entry.path or entry.root / factory
    hooks = bool(dag.on_render or dag.on_finish or any(getattr(dag[n], "_on_render", None) for n in dag))
    return PipelineSpec(path, entry.root, tasks, factory=factory, hooks=hooks)


def _task(task: Any, root: Path) -> TaskSpec:
    products = _file_products(task.product, root)
    kind, source = _source(task, root)
    try:
        params = dict(task.params.to_json_serializable(params_only=True))
    except Exception:
        params = {}
    return TaskSpec(task.name, source, products, params, tuple(task.upstream), (), kind)


def _file_products(product: Any, root: Path) -> dict[str, Path]:
    """A task's File products by key (a single one as ``nb``); relations in a database are not files."""
    from ploomber.products import File, MetaProduct

    if isinstance(product, MetaProduct):
        return {str(k): (root / str(p)).resolve() for k, p in product.products.products.items()
                if isinstance(p, File)}
    return {"nb": (root / str(product)).resolve()} if isinstance(product, File) else {}


def _source(task: Any, root: Path) -> tuple[str, Path]:
    """The task's kind (:mod:`mlnb.core.sources`) and the file holding its code."""
    from ploomber.tasks import NotebookRunner, PythonCallable

    if isinstance(task, PythonCallable):
        try:
            found = inspect.getsourcefile(task.source.primitive)
        except TypeError:
            found = None
        return sources.FUNCTION, Path(found) if found else root
    loc = getattr(task.source, "loc", None)
    path = Path(str(loc)).resolve() if loc else root
    if isinstance(task, NotebookRunner):
        return (sources.NOTEBOOK if path.suffix == ".ipynb" else sources.SCRIPT), path
    return sources.OTHER, path
