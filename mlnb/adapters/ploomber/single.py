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
    """Run task ``name`` of the rendered ``dag`` (forced, upstream not run: its products must be in place);
    the error that stopped it (Ploomber's wrapper unwrapped), or None."""
    from ploomber.exceptions import DAGBuildEarlyStop, DAGBuildError

    task = spec.tasks[name]
    for product in task.products.values():  # nothing of an earlier run may pass for this one's
        _remove(product)
    _remove(task.notebook_product.with_name(partial_notebook_name(task)))
    forget_metadata(task)
    try:
        dag.build_partially(name, force=True, show_progress=False, skip_upstream=True)
    except (DAGBuildError, DAGBuildEarlyStop) as exc:
        error: BaseException = exc
        while error.__cause__ is not None and "Error building task" in str(error):
            error = error.__cause__
        return error
    return None


def _remove(path: Any) -> None:
    import shutil

    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
