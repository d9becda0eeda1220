"""The MLflow model registry as mlnb uses it: MLflow's errors turned into mlnb's, alias lookups, version tags.

MLflow is imported inside each function (see :mod:`mlnb.adapters.mlflow.runs`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def translated(make: Callable[[str], Exception]) -> Iterator[None]:
    """Turn an MLflow failure inside the block into ``make(message)`` (one line, no traceback chain);
    anything else passes through."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise make(exc.message) from None


def alias_version(mlflow_client: Any, model_name: str, alias: str) -> str:
    """The version number ``alias`` points at now (an MLflow error when there is none: wrap the call in
    :func:`translated`)."""
    return str(mlflow_client.get_model_version_by_alias(model_name, alias).version)


def alias_version_if_set(mlflow_client: Any, model_name: str, alias: str) -> str | None:
    """Like :func:`alias_version`, but None when the alias (or the model) does not exist: a challenger's
    alias removed by ``mlnb canary abort`` or ``promote``. A store that cannot be reached still raises."""
    from mlflow.exceptions import MlflowException

    try:
        return alias_version(mlflow_client, model_name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or (
                exc.error_code == "INVALID_PARAMETER_VALUE" and "alias" in exc.message.lower()):
            return None
        raise


def set_version_tags(mlflow_client: Any, model_name: str, version: str, tags: dict[str, str]) -> None:
    """Set each of ``tags`` on a registered version (one call per tag, in order)."""
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(model_name, version, key, value)
