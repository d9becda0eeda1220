"""One project, loaded once and passed down (pure): its root, its parameters (``env.yaml``, or the
``--env-file`` given, with ``-p key=value`` overrides), the pipeline spec, the MLflow experiment's
name, and the settings (``MLNB_*`` variables, :mod:`mlnb.core.settings`).

Nothing is read until it is asked for, and then once: ``project.env`` reads the env file and applies
the overrides on first use, ``project.spec`` checks ``pipeline.yaml`` against it on first use, so a
command raises the same one-line errors, at the same point, as when it read them itself. A process
that lives on while the user edits (the Jupyter server) loads a new ``Project`` per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from mlnb.core import settings
from mlnb.core.config import apply_overrides, load_env
from mlnb.core.spec import PipelineSpec, load_spec
from mlnb.errors import EnvError

DEFAULT_EXPERIMENT = "mlnb"  # the MLflow experiment when env.yaml names none (mlflow.experiment)
ENV_FILE = "env.yaml"
SPEC_FILE = "pipeline.yaml"


@dataclass(frozen=True)
class Project:
    root: Path
    env_file: str | None = None  # --env-file, as given (relative to the working directory)
    overrides: tuple[str, ...] = ()  # -p key=value

    @property
    def env_path(self) -> Path:
        return Path(self.env_file) if self.env_file else self.root / ENV_FILE

    @property
    def overridden(self) -> bool:
        """Built with parameters other than the committed ones (``--env-file`` or ``-p``)."""
        return bool(self.env_file or self.overrides)

    @cached_property
    def env(self) -> dict[str, Any]:
        """The parameters, overrides applied (empty when the project has no env.yaml)."""
        path = self.env_path
        if self.env_file and not path.exists():
            raise EnvError(f"{self.env_file}: env file not found")
        env = load_env(path) if path.exists() else {}
        return apply_overrides(env, list(self.overrides), source=path.name)

    @cached_property
    def spec(self) -> PipelineSpec:
        """``pipeline.yaml``, checked and rendered with :attr:`env`."""
        return load_spec(self.root / SPEC_FILE, self.env)

    @property
    def mlflow(self) -> dict[str, Any]:
        """The ``mlflow:`` section of the parameters (experiment, model_name)."""
        section = self.env.get("mlflow")
        return section if isinstance(section, dict) else {}

    @property
    def experiment(self) -> str:
        return str(self.mlflow.get("experiment") or DEFAULT_EXPERIMENT)

    @property
    def committed(self) -> Project:
        """This project with its committed parameters (what dvc.yaml and dvc.lock describe)."""
        return Project(self.root) if self.overridden else self

    @staticmethod
    def setting(name: str) -> Any:
        """The current value of ``MLNB_*`` variable ``name`` (:func:`mlnb.core.settings.get`)."""
        return settings.get(name)


def load_project(root: Path, env_file: str | None = None, overrides: tuple[str, ...] = ()) -> Project:
    """The project at ``root`` (found by :func:`mlnb.core.io.find_project_root`); reads nothing yet."""
    return Project(Path(root), env_file, tuple(overrides))
