"""Every ``MLNB_*`` environment variable mlnb reads: its type, default and one line of help (pure).

Read them with :func:`get`, which parses the value each time it is called (never cached at import:
tests, the build and its kernels set them as they go); a value of the wrong type is a one-line
:class:`~mlnb.errors.SettingError` naming the variable and the value. An empty value counts as unset.
``mlnb settings`` lists them all with their current values. *Internal* ones are set by mlnb for the
processes it starts (kernels, the fork server, a build started from JupyterLab); users set the others.
Standard library only: the serving image's health check and every task kernel import this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.errors import SettingError

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # "str" | "path" | "int" | "float" | "bool"
    default: Any
    help: str
    internal: bool = False  # set by mlnb for the processes it starts
    minimum: float | None = None
    maximum: float | None = None

    def parse(self, raw: str) -> Any:
        """``raw`` as this setting's type; :class:`SettingError` (one line) when it is not one."""
        text = raw.strip()
        if self.kind == "str":
            return raw
        if self.kind == "path":
            return Path(text).expanduser()
        if self.kind == "bool":
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise SettingError(f"{self.name}={raw!r}: expected a boolean (1/0, true/false, yes/no, on/off)")
        try:
            value: float = int(text) if self.kind == "int" else float(text)
        except ValueError:
            noun = "an integer" if self.kind == "int" else "a number"
            raise SettingError(f"{self.name}={raw!r}: expected {noun}") from None
        low = self.minimum if self.minimum is not None else float("-inf")
        high = self.maximum if self.maximum is not None else float("inf")
        if not low <= value <= high:
            bounds = f"from {low:g} to {high:g}" if self.maximum is not None else f"of at least {low:g}"
            raise SettingError(f"{self.name}={raw!r}: expected a value {bounds}")
        return value


_DECLARED = (
    # the project and the build
    Setting("MLNB_PROJECT_ROOT", "path", None, "The project directory (holding pipeline.yaml) task notebooks and "
            "the JupyterLab extension use; default: the one at or above the working directory."),
    Setting("MLNB_STATE_DIR", "path", Path(".mlnb"), "Where mlnb keeps its state for a project (build log, "
            "events and lock, failure snapshots, debug and serve caches, nbval workspace): relative to the project "
            "root, or an absolute path (one per project)."),
    Setting("ENTRY_POINT", "str", None, "Ploomber's own: what a pipeline command builds when no --entry-point "
            "is given (a spec file, a factory's dotted path, a folder or a glob), read as `ploomber build` reads it."),
    Setting("MLNB_DVC_REMOTE", "str", None, "The DVC remote `mlnb push`/`pull` use (a path or URL, no "
            "password), instead of the repository's default remote; registered in .dvc/config.local."),
    Setting("MLNB_DASK_SCHEDULER", "str", None, "The Dask scheduler `mlnb build --executor dask` sends tasks to "
            "(tcp://HOST:PORT); unset: a local cluster of worker processes."),
    Setting("MLNB_DASK_RETRIES", "int", 2, "How many times a task is run again on the cluster when its worker dies "
            "or the exchange with the remote fails (a failing notebook is not retried).", minimum=0, maximum=20),
    Setting("MLNB_SWEEP_RUN_ID", "str", None, "The `mlnb sweep` run a point's build run goes under.", internal=True),
    Setting("MLNB_SWEEP_SOURCE", "path", None, "The project a sweep point's sources were copied from (its git "
            "commit and committed params are that project's).", internal=True),
    Setting("MLNB_BUILD_ORIGIN", "str", "terminal", "Who started the build, as the Pipeline panel shows it "
            "(the panel sets `jupyter`).", internal=True),
    Setting("MLNB_BUILD_RUN_ID", "str", None, "The MLflow build run a task's runs (and registered model "
            "versions) belong to; set by `mlnb build` for its tasks.", internal=True),
    Setting("MLNB_DEBUG_NOTEBOOK", "bool", False, "Set in a debug notebook: its task runs go to a throwaway "
            "store under .mlnb/debug/, not to the project's experiment.", internal=True),
    # failure snapshots and --resume (the fork engine's kernels)
    Setting("MLNB_SNAPSHOT_DIR", "path", None, "Where a task's kernel writes its namespace snapshot when a "
            "cell fails; set per task by `mlnb build` (fork engine).", internal=True),
    Setting("MLNB_SNAPSHOT_MAX_MB", "float", 512.0, "Size limit of a failure snapshot in MB (0: none taken); "
            "set from `mlnb build --snapshot-max-mb`.", internal=True, minimum=0),
    Setting("MLNB_SNAPSHOT_AFTER_S", "float", 1.0, "Take a snapshot only when the cells before the failing "
            "one ran at least this many seconds (cheaper ones are re-run instead).", minimum=0),
    Setting("MLNB_SNAPSHOT_TIMEOUT", "float", 60.0, "Seconds a snapshot may take before it is killed (and "
            "says so).", minimum=0),
    Setting("MLNB_RESUME_FROM", "path", None, "The snapshot a resumed task's kernel restores before its "
            "failing cell (`mlnb build --resume`).", internal=True),
    Setting("MLNB_RESUME_COUNT", "int", None, "The execution count a resumed task's cells go on from.",
            internal=True, minimum=0),
    Setting("MLNB_FORKSERVER", "str", None, "The socket of the fork server a build's kernels start from.",
            internal=True),
    Setting("MLNB_FORKSERVER_PID", "int", None, "The process id of the build's fork server.", internal=True),
    Setting("MLNB_FORKSERVER_LOG", "path", None, "Keep the fork server's log (and its kernels' stderr) at this "
            "path instead of a temporary directory."),
    # regression tests of notebooks
    Setting("MLNB_NBVAL_WORKSPACE", "path", None, "The workspace blessed notebooks run in (`mlnb nbval`, "
            "tests/nbval).", internal=True),
    # the registry
    Setting("MLNB_FAULT_AT", "str", None, "Crash tests only: exit at this step of a promotion (registered, "
            "audited, previous, champion, tagged), as a kill -9 would."),
    # serving
    Setting("MLNB_MODEL_URI", "str", None, "The model `mlnb serve` serves when no MODEL_URI is given; "
            "default: models:/<mlflow.model_name>@champion of the project."),
    Setting("MLNB_SERVE_HOST", "str", "127.0.0.1", "The address `mlnb serve` listens on."),
    Setting("MLNB_SERVE_PORT", "int", 8080, "The port `mlnb serve` listens on (and the image's health check "
            "asks).", minimum=0, maximum=65535),
    Setting("MLNB_SERVE_WORKERS", "int", 1, "Processes `mlnb serve` forks to share the port.", minimum=1,
            maximum=64),
    Setting("MLNB_ALLOW_UNSAFE_PICKLE", "bool", False, "Let `mlnb serve`/`fetch-model` load models in formats "
            "that run code when loaded (pickle, cloudpickle): only for models you trust."),
    Setting("MLNB_CHALLENGER_URI", "str", None, "`mlnb serve --challenger`: a second model served beside the "
            "champion (e.g. models:/NAME@challenger), with MLNB_CHALLENGER_TRAFFIC or MLNB_SHADOW."),
    Setting("MLNB_CHALLENGER_TRAFFIC", "float", None, "`mlnb serve --traffic`: percent of requests the challenger "
            "answers.", minimum=0, maximum=100),
    Setting("MLNB_SHADOW", "bool", False, "`mlnb serve --shadow`: the challenger scores a copy of every request; "
            "the champion answers."),
    Setting("MLNB_DRIFT_REFERENCE", "path", None, "`mlnb serve --drift-reference`: the table (the train split) "
            "the live drift gauges on /metrics compare served rows with."),
    Setting("MLNB_SERVE_URL", "str", None, "`mlnb canary status --url`: the mlnb serve service whose /metrics and "
            "/version it reads (default http://127.0.0.1:8080)."),
)
SETTINGS: Mapping[str, Setting] = {s.name: s for s in _DECLARED}


def state_dir(root: Path) -> Path:
    """The project at ``root``'s state directory (``MLNB_STATE_DIR``, default ``ROOT/.mlnb``)."""
    chosen: Path = get("MLNB_STATE_DIR")
    return chosen if chosen.is_absolute() else root / chosen


def declared(name: str) -> Setting:
    try:
        return SETTINGS[name]
    except KeyError:  # a programming error: declare it above
        raise KeyError(f"{name}: not declared in mlnb.core.settings") from None


def get(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """The current value of setting ``name`` (from ``environ``, default ``os.environ``), parsed; its
    default when unset or empty. Raises :class:`SettingError` for a value of the wrong type."""
    setting = declared(name)
    raw = (os.environ if environ is None else environ).get(name)
    if raw is None or not raw.strip():
        return setting.default
    return setting.parse(raw)


def rows(environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Each setting with its current value (what ``mlnb settings`` prints); a bad value is reported in
    ``error``, not raised, so the listing shows every setting."""
    environ = os.environ if environ is None else environ
    out = []
    for s in _DECLARED:
        raw = environ.get(s.name)
        row: dict[str, Any] = {"name": s.name, "type": s.kind, "default": _jsonable(s.default), "help": s.help,
                               "internal": s.internal, "set": bool(raw and raw.strip()), "error": None}
        try:
            row["value"] = _jsonable(get(s.name, environ))
        except SettingError as exc:
            row["value"], row["error"] = raw, str(exc)
        out.append(row)
    return out


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value
