"""MLflow runs and artifacts as mlnb uses them: the client, run lookup, the build run's logging, a
task run's batch of values, artifact downloads.

MLflow is imported inside each function (importing it costs about a second, and ``mlnb --help`` or a
command that never touches the store must not pay for it). The client and the ``Run`` objects it
returns are passed around as opaque values (``Any``): callers read ``run.info`` / ``run.data`` but
never import MLflow themselves.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlnb.adapters.mlflow.tracking import NOT_FOUND


def client(uri: str | None = None) -> Any:
    """An ``MlflowClient`` on ``uri`` (default: the tracking URI set by :func:`~.tracking.configure`)."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri) if uri else MlflowClient()


def get_run(mlflow_client: Any, run_id: str) -> Any | None:
    """The MLflow ``Run`` with this id, or None when the store says there is no such run (any other
    MLflow failure is raised, for the caller's error translation)."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code not in NOT_FOUND:
            raise
        return None


def download(artifact_uri: str, dst: str | Path) -> str:
    """Download the artifact(s) at ``artifact_uri`` (``models:/...``, ``runs:/...``, a logged model's
    URI) into the directory ``dst``; return the local path."""
    import mlflow.artifacts

    return mlflow.artifacts.download_artifacts(artifact_uri=artifact_uri, dst_path=str(dst))


def download_run_artifact(run_id: str, path: str, dst: str | Path) -> str:
    """Download one artifact of a run (``path`` relative to the run's artifact root) into ``dst``."""
    import mlflow.artifacts

    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=str(dst))


def run_file(mlflow_client: Any, run_id: str, path: str, dst: str | Path) -> Path | None:
    """Download one artifact file of a run through ``mlflow_client`` into ``dst``; None when the run has
    no such artifact or the store cannot deliver it (no progress bar on a CLI's stderr)."""
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        return Path(mlflow_client.download_artifacts(run_id, path, str(dst)))
    except (MlflowException, OSError):
        return None


def log_batch(mlflow_client: Any, run_id: str, *, metrics: dict[str, float], tags: dict[str, str]) -> None:
    """Log ``metrics`` (step 0, timestamped now) and ``tags`` on a run in one store transaction."""
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    mlflow_client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                            tags=[RunTag(k, v) for k, v in tags.items()])


class ActiveRun:
    """The run :func:`start_run` opened (MLflow's active run): what a build logs on it."""

    def __init__(self, run: Any) -> None:
        self.run = run

    @property
    def run_id(self) -> str:
        return str(self.run.info.run_id)

    @property
    def experiment_id(self) -> str:
        return str(self.run.info.experiment_id)

    def log_params(self, params: dict[str, Any]) -> None:
        import mlflow

        mlflow.log_params(params)

    def log_metrics(self, metrics: dict[str, float]) -> None:
        import mlflow

        mlflow.log_metrics(metrics)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        """``data`` as a JSON or YAML artifact (by ``artifact_file``'s extension)."""
        import mlflow

        mlflow.log_dict(data, artifact_file)

    def log_artifact(self, path: str) -> None:
        import mlflow

        mlflow.log_artifact(path)

    def set_tag(self, key: str, value: Any) -> None:
        import mlflow

        mlflow.set_tag(key, value)

    def set_tags(self, tags: dict[str, Any]) -> None:
        import mlflow

        mlflow.set_tags(tags)


@contextlib.contextmanager
def start_run(run_name: str, tags: dict[str, str]) -> Iterator[ActiveRun]:
    """Open a run in the configured experiment (:func:`~.tracking.configure`) as MLflow's active run;
    it ends FINISHED, or FAILED when the block raises."""
    import mlflow

    with mlflow.start_run(run_name=run_name, tags=tags) as run:
        yield ActiveRun(run)
