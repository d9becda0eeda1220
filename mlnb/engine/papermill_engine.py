"""The ``mlnb`` papermill engine, registered through the ``papermill.engine`` entry point
(``pyproject.toml``): papermill loads it when ``papermill.engines`` is imported, so
``engine_name="mlnb"`` works in any process where mlnb is installed.

It is papermill's own nbclient engine with the fork server's kernel manager
(:mod:`mlnb.engine.kernel`) while one is running, and :mod:`mlnb.engine.clients`' resuming client
when a task resumes at its failing cell; otherwise it is exactly the stock engine.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from papermill.engines import NBClientEngine

from mlnb.core import settings
from mlnb.engine import kernel
from mlnb.engine.clients import resuming_client_class


class ForkEngine(NBClientEngine):  # type: ignore[misc]  # papermill is untyped
    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        if settings.get(kernel.SERVER_ENV):
            kwargs.setdefault("kernel_manager_class", _manager_class())
        kernel.watch_cells(nb_man)
        resume = kernel.current_options()["resume"]
        if not resume:
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
        kwargs.pop("input_path", None)  # as NBClientEngine does, then its own kwargs
        start_timeout = kwargs.pop("start_timeout", 60)
        execution_timeout = kwargs.pop("execution_timeout", None)
        kwargs.pop("timeout", None)
        kwargs.pop("startup_timeout", None)
        return _resuming_client_class()(nb_man, resume=resume, timeout=execution_timeout,
                                       startup_timeout=start_timeout, kernel_name=kernel_name,
                                       log=logging.getLogger("papermill"), **kwargs).execute()


@functools.cache
def _manager_class() -> type:
    return kernel.kernel_manager_class()


@functools.cache
def _resuming_client_class() -> type:
    return resuming_client_class()


def register() -> None:
    """Make sure papermill knows the ``mlnb`` engine. An installed mlnb registers it through its entry
    point; mlnb run from a source tree without an install is registered here (papermill's public API)."""
    from papermill.engines import papermill_engines
    from papermill.exceptions import PapermillException

    try:
        papermill_engines.get_engine(kernel.ENGINE_NAME)
    except PapermillException:
        papermill_engines.register(kernel.ENGINE_NAME, ForkEngine)
