"""One project, loaded once and passed down (pure): its root, its parameters (``env.yaml``, or the
``--env-file`` given, with ``-p key=value`` overrides), the pipeline spec, the MLflow experiment's
name, and the settings (``MLNB_*`` variables, :mod:`mlnb.core.settings`).

Nothing is read until it is asked for, and then once: ``project.env`` reads the env file and applies
the overrides on first use, ``project.spec`` checks ``pipeline.yaml`` against it on first use, so a
command raises the same one-line errors, at the same point, as when it read them itself. A process
that lives on while the user edits (the Jupyter server) loads a new ``Project`` per request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from mlnb.core import entry as entries
from mlnb.core import settings
from mlnb.core.config import apply_overrides, load_env
from mlnb.core.entry import EntryPoint
from mlnb.core.spec import PipelineSpec, load_files_spec, load_spec, location_of
from mlnb.errors import EnvError, SpecError

# Reads a Python factory's tasks (the entry point, the factory's dotted path, the env): Ploomber's
# work, so the caller passes it in (mlnb.adapters.ploomber.factory.spec_from_factory)
FactoryLoader = Callable[[EntryPoint, str, dict[str, Any]], PipelineSpec]

DEFAULT_EXPERIMENT = "mlnb"  # the MLflow experiment when env.yaml names none (mlflow.experiment)
ENV_FILE = "env.yaml"
SPEC_FILE = "pipeline.yaml"


@dataclass(frozen=True)
class Project:
    root: Path
    env_file: str | None = None  # --env-file, as given (relative to the working directory)
    overrides: tuple[str, ...] = ()  # -p key=value
    entry_point: str | None = None  # --entry-point, as given (None: pipeline.yaml, src/<package>/pipeline.yaml)
    factory_loader: FactoryLoader | None = field(default=None, compare=False, repr=False)

    @cached_property
    def entry(self) -> EntryPoint:
        """The spec file or factory this project builds (:mod:`mlnb.core.entry`)."""
        return entries.resolve(self.entry_point, self.root, settings.get("ENTRY_POINT"))

    @property
    def env_path(self) -> Path:
        """``--env-file``, else the env file Ploomber pairs with the spec (``env.yaml``, ``env.serve.yaml``)."""
        if self.env_file:
            return Path(self.env_file)
        return self.root / (self.entry.env_name if self.entry_point or settings.get("ENTRY_POINT") else ENV_FILE)

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
        """The spec (``pipeline.yaml`` or the entry point's), checked and rendered with :attr:`env`; a
        factory's (``location:`` or a dotted-path entry point) read by :attr:`factory_loader`."""
        found = self.entry
        if found.files is not None:
            spec = load_files_spec(found.files, found.root)
        elif (factory := found.factory or (location_of(found.path) if found.path is not None else None)) is not None:
            if self.factory_loader is None:
                raise SpecError(f"{found.spec_name}: the pipeline is made by a Python factory ({factory}): "
                                "only mlnb's commands read it (through Ploomber)")
            spec = self.factory_loader(found, factory, self.env)
        else:
            assert found.path is not None
            spec = load_spec(found.path, self.env, root=entries.products_root(found.path))
        return dataclasses.replace(spec, entry_point=self.entry_point or settings.get("ENTRY_POINT"))

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
        if not self.overridden:
            return self
        return Project(self.root, entry_point=self.entry_point, factory_loader=self.factory_loader)

    @staticmethod
    def setting(name: str) -> Any:
        """The current value of ``MLNB_*`` variable ``name`` (:func:`mlnb.core.settings.get`)."""
        return settings.get(name)


def load_project(root: Path, env_file: str | None = None, overrides: tuple[str, ...] = (),
                 entry_point: str | None = None, factory_loader: FactoryLoader | None = None) -> Project:
    """The project at ``root`` (found by :func:`mlnb.core.io.find_project_root`); reads nothing yet."""
    return Project(Path(root), env_file, tuple(overrides), entry_point, factory_loader)
