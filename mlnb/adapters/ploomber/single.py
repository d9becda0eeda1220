"""One task run where its products should appear, nothing else done: what a cluster worker runs.

The build that asked for it (on another machine) does the rest of the task's life cycle with its own
Ploomber DAG: checks, hooks, metadata, quarantine (:func:`mlnb.adapters.ploomber.pipeline.build` with
``remote``). So here a failed task's products and partial notebook are left where they are, to be sent back.
"""

from __future__ import annotations

from typing import Any

from mlnb.adapters.ploomber.pipeline import forget_metadata, partial_notebook_name
from mlnb.core.spec import PipelineSpec


def preload() -> None:
    """Import Ploomber and papermill's engine now (seconds in a fresh process), ahead of ``open_dag``."""
    from mlnb.adapters.ploomber.pipeline import _quiet_ploomber

    _quiet_ploomber()
    import ploomber.spec  # noqa: F401

    from mlnb.engine import papermill_engine

    papermill_engine.register()


def run_task(spec: PipelineSpec, dag: Any, name: str) -> BaseException | None:
    """Run the code of task ``name`` of the rendered ``dag`` (its upstream products must be in place); the error
    that stopped it, or None. Only the task's ``run()``: its hooks, status and metadata are the build's (they run
    where the build runs, once), and a DAG copy per task (``build_partially``) would cost ~20 ms each."""
    from ploomber.tasks.abc import _ensure_parents_exist

    task = spec.tasks[name]
    for product in task.products.values():  # nothing of an earlier run may pass for this one's
        _remove(product)
    _remove(task.notebook_product.with_name(partial_notebook_name(task)))
    forget_metadata(task)
    ploomber_task = dag[name]
    try:
        _ensure_parents_exist(ploomber_task.product)
        ploomber_task.run()
    except Exception as exc:  # the task's own error (DAGBuildEarlyStop included: the build stops gracefully)
        return exc
    return None


def _remove(path: Any) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
