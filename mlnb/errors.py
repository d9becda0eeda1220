"""The one exceptions module of mlnb.

Every error names the offending file, key/field and value so the CLI can print it
as one line. ``UserInputError`` subclasses map to exit code 2, ``TaskFailed`` and
``GateFailed`` to exit code 1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# scheme://user:password@host or scheme://token@host: what an MLflow or DVC URI may carry
_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^/@\s:'\"]*)(?::[^/@\s'\"]*)?@")


def redact(text: str) -> str:
    """``text`` with the credentials of every URI in it replaced by ``***`` (the user name kept when
    there is a password: ``http://alice:***@host``)."""
    def hide(m: re.Match[str]) -> str:
        has_password = ":" in m.group(0)[len(m.group("scheme")):]
        return f"{m.group('scheme')}{m.group('user') + ':***' if has_password else '***'}@"

    return _CREDENTIALS.sub(hide, text)


class MlnbError(Exception):
    """Base class: ``str(err)`` is a complete one-line message."""

    exit_code = 1
    http_status = 500  # what the Jupyter server extension answers with

    def __str__(self) -> str:  # one line whatever the cause, and never a URI's credentials
        return redact(" ".join(super().__str__().split()))


class UserInputError(MlnbError):
    """Bad input from the user: a spec, env file, notebook, CSV or CLI value."""

    exit_code = 2
    http_status = 400


class SettingError(UserInputError):
    """An ``MLNB_*`` environment variable holds a value of the wrong type (see ``mlnb settings``)."""


class SpecError(UserInputError):
    """``pipeline.yaml`` is malformed (unknown key, unknown upstream, cycle, ...)."""


class EnvError(UserInputError):
    """``env.yaml`` or a ``-p key=value`` override is malformed or of the wrong type."""


class NotebookError(UserInputError):
    """A task notebook is not valid JSON or lacks a ``parameters`` cell."""


class ConvertError(UserInputError):
    """A notebook cannot be converted (bad split option, unparsable cell, non-empty output dir)."""


class HandoffError(MlnbError):
    """A converted pipeline's step could not save or load a variable it hands off."""


class DataValidationError(MlnbError):
    """Raw data violates the schema; raised inside the ``validate`` task."""

    def __init__(self, column: str, rule: str, detail: str) -> None:
        self.column, self.rule, self.detail = column, rule, detail
        super().__init__(f"column {column!r} violates {rule}: {detail}")


class GateFailed(MlnbError):
    """The candidate model did not beat the champion (or the minimum F1)."""


class TaskFailed(MlnbError):
    """A pipeline task failed; carries the task name and failing cell."""

    def __init__(self, task: str, message: str) -> None:
        self.task = task
        super().__init__(message)


class TrackingError(MlnbError):
    """MLflow could not be reached or returned something unexpected."""


class UnsafePathError(UserInputError):
    """A path escapes the project directory."""


class VersioningError(MlnbError):
    """DVC could not record, push or pull: remote missing or unreachable, corrupted object, DVC failed."""


class OutOfSync(MlnbError):
    """``dvc.yaml`` differs from what ``pipeline.yaml`` generates (``mlnb dvc sync --check``)."""


class RegressionError(MlnbError):
    """nbval references could not be checked or blessed: workspace build failed, a notebook raised."""


class RunNotFound(UserInputError):
    """No MLflow run with that id, or it is not an mlnb build run (HTTP 404)."""

    http_status = 404


class ArtifactNotFound(UserInputError):
    """A run artifact the Runs panel asked for that is not there, or not an image (HTTP 404)."""

    http_status = 404


class PromotionRefused(MlnbError):
    """A promotion or rollback that would be wrong: gate failed (without --force), nothing to promote or
    roll back to (exit 1, HTTP 409)."""

    http_status = 409


class PolicyRefused(PromotionRefused):
    """A promotion the policy refuses (exit 1, HTTP 409); ``requirements`` lists each one, held or not."""

    def __init__(self, message: str, requirements: Sequence[object]) -> None:
        super().__init__(message)
        self.requirements = list(requirements)


class RegistryError(MlnbError):
    """The MLflow model registry failed during a promotion or rollback."""


class ServingError(MlnbError):
    """``mlnb serve`` cannot serve: no such model or version, a model that fails to load, a port in use."""


class UnsafeModel(ServingError):
    """A model file in a format that runs code when loaded (pickle, cloudpickle, a custom pyfunc), or a
    skops file naming a type outside mlnb's allow-list."""


class FetchFailed(ServingError):
    """The registry or artifact store did not deliver a model (unreachable, an error answer): worth a retry,
    unlike a model that fails its hash or fails to load."""


class IntegrityError(ServingError):
    """A model's files do not hash to what MLflow recorded for it (``mlnb.artifact_sha256``)."""


class BadRequest(UserInputError):
    """A scoring request the model cannot take (HTTP 400): malformed JSON, a missing or unknown column,
    a wrong type, a null where a value is required. The message never repeats the request's values."""

    error_code = "BAD_REQUEST"


class UnsupportedMediaType(BadRequest):
    """A scoring request in a content type the service does not read (HTTP 415)."""

    http_status = 415
    error_code = "UNSUPPORTED_MEDIA_TYPE"


class PayloadTooLarge(BadRequest):
    """A scoring request body over the configured limit, refused before it is parsed (HTTP 413)."""

    http_status = 413
    error_code = "PAYLOAD_TOO_LARGE"


class BuildRunning(UserInputError):
    """Another ``mlnb build`` holds the project's build lock (exit 2, HTTP 409)."""

    http_status = 409


class StaleFailure(UserInputError):
    """A failure that is no longer the task's current one (a later build ran the task again)."""

    http_status = 409


class RemoteTaskFailed(TaskFailed):
    """A task run on a cluster worker failed (its partial notebook was sent back); ``early_stop``: it asked
    the build to stop gracefully (Ploomber's ``DAGBuildEarlyStop``)."""

    def __init__(self, task: str, message: str, early_stop: bool = False) -> None:
        self.early_stop = early_stop
        super().__init__(task, message)


class ClusterError(MlnbError):
    """The cluster could not run a task: scheduler unreachable, workers without mlnb, a worker lost too often."""
