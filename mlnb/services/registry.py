"""Promote a build run's model to production, roll back (shared by CLI and Jupyter; :mod:`mlnb.services.runs` lists).

The MLflow registry's alias ``champion`` is what production serves; ``previous`` is the champion
before it, so a rollback can move ``champion`` back (and a second rollback undoes the first).
Promotion and rollback are transactions checked against the project's promotion policy: see
:mod:`mlnb.services.promotion` (the steps, crash safety) and :mod:`mlnb.services.policy` (the requirements). This
module holds what they share: the project's registry (:class:`ModelRegistry`), run lookup, versions by
build, version tags.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.adapters.mlflow import registry as mlflow_registry
from mlnb.adapters.mlflow import runs as mlflow_runs
from mlnb.adapters.mlflow import tracking
from mlnb.core import audit, integrity, settings
from mlnb.core.gate import verdict_of
from mlnb.core.io import read_json
from mlnb.core.project import Project
from mlnb.errors import EnvError, PromotionRefused, RegistryError, RunNotFound, UserInputError

CHAMPION, PREVIOUS = "champion", "previous"
TAG_MAX = 5000  # MLflow's limit on a tag value
COMPACT = ("action", "txn", "run_id", "version", "previous_version", "user", "time", "forced", "bypassed")
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


def lock_file(root: Path) -> Path:
    """The lock every promotion, approval and rollback of the project at ``root`` holds."""
    return settings.state_dir(root) / "registry.lock"


@dataclass(frozen=True)
class ModelRegistry:
    """A project's model in the MLflow registry: its name and the experiment its builds run in."""

    project: Project
    model_name: str
    experiment_id: str

    @property
    def root(self) -> Path:
        return self.project.root


def open_registry(project: Project) -> ModelRegistry:
    """The project's model name and experiment (env.yaml ``mlflow:``), with MLflow pointed at its store."""
    env_path = project.env_path
    if not env_path.exists():
        raise EnvError(f"{env_path}: not found (the registry reads mlflow.model_name from it)")
    name = project.mlflow.get("model_name")
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise EnvError(f"{env_path}: mlflow.model_name: expected a model name like 'my-model', got {name!r}")
    return ModelRegistry(project, name, tracking.configure(project.root, project.experiment))


def check_run_id(run_id: Any) -> str:
    """A run id is 32 lowercase hex digits; anything else is refused before it reaches MLflow."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):  # not echoed: it may be anything
        raise UserInputError("run id: expected 32 lowercase hex digits (see `mlnb runs`)")
    return run_id


def _client() -> Any:
    return mlflow_runs.client()


@contextlib.contextmanager
def _mlflow_errors() -> Iterator[None]:
    """Any MLflow failure inside the registry's public functions is one ``RegistryError`` line."""
    with mlflow_registry.translated(lambda message: RegistryError(f"MLflow registry: {message}")):
        yield


def translated(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _mlflow_errors():
            return fn(*args, **kwargs)

    return wrapper


def _build_run(client: Any, project: ModelRegistry, run_id: str) -> Any:
    run = mlflow_runs.get_run(client, check_run_id(run_id))
    if run is None:
        raise RunNotFound(f"run {run_id}: no such MLflow run (see `mlnb runs`)")
    if run.data.tags.get("mlnb.kind") != "build" or run.info.experiment_id != project.experiment_id:
        raise RunNotFound(f"run {run_id}: not a build run of this project (see `mlnb runs`)")
    return run


def _build_of(client: Any, version: Any) -> str | None:
    """The build run a registered version came from (its tag, else the parent of its run)."""
    if version.tags.get("mlnb.build_run_id"):
        return str(version.tags["mlnb.build_run_id"])
    if not version.run_id:
        return None
    try:
        run = client.get_run(version.run_id)
    except Exception:  # a version registered from a deleted run: no build to name
        return None
    if run.data.tags.get("mlnb.kind") == "build":
        return str(version.run_id)
    parent = run.data.tags.get("mlflow.parentRunId")
    return None if parent is None else str(parent)


def versions_by_build(client: Any, name: str) -> dict[str, str]:
    """Build run id -> the newest registered version made from it."""
    out: dict[str, str] = {}
    for mv in client.search_model_versions(f"name = '{name}'"):
        build = _build_of(client, mv)
        if build and int(mv.version) > int(out.get(build, "0")):
            out[build] = str(mv.version)
    return out


@dataclass(frozen=True)
class _Registry:
    """One read of the registry: versions by build, and the versions behind the two aliases."""

    versions: dict[str, str]
    champion: Any | None
    previous: Any | None

    @classmethod
    def read(cls, client: Any, name: str) -> _Registry:
        return cls(versions_by_build(client, name), tracking.version_by_alias(client, name, CHAMPION),
                   tracking.version_by_alias(client, name, PREVIOUS))

    def summary(self, run: Any) -> dict[str, Any]:
        version = self.versions.get(run.info.run_id)
        return {**tracking.build_summary(run), "model_version": version,
                "champion": bool(self.champion and version == str(self.champion.version)),
                "previous": bool(self.previous and version == str(self.previous.version))}


def _describe(client: Any, version: Any) -> dict[str, Any]:
    """A registered version, its build run and that build's metrics (empty if the build is gone)."""
    build = _build_of(client, version)
    run = None
    if build:
        try:
            run = client.get_run(build)
        except Exception:  # its build run was deleted: nothing to compare against
            run = None
    return {"version": str(version.version), "run_id": build, "run": run,
            "metrics": tracking.build_summary(run)["metrics"] if run else {}}


@translated
def build_verdict(project: ModelRegistry, run_id: str | None = None) -> str | None:
    """The gate verdict of a build (default: the last one, ``products/last_build.json``), or None."""
    if run_id is None:
        last = project.root / "products" / "last_build.json"
        run_id = (read_json(last) or {}).get("run_id") if last.exists() else None
        if not run_id:
            return None
    return verdict_of(_build_run(_client(), project, run_id).data.tags)


def _trained_model(client: Any, project: ModelRegistry, run: Any) -> Any | None:
    """The model this build evaluated, for a forced promotion: the training run recorded on the build
    (``mlnb.train_run_id``; training may have been up to date, run by an earlier build), else a model
    logged by one of the build's own task runs."""
    sources = [run.data.tags["mlnb.train_run_id"]] if run.data.tags.get("mlnb.train_run_id") else []
    sources += [c.info.run_id for c in client.search_runs(
        [project.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'")]
    for source in sources:
        if not RUN_ID.fullmatch(source):
            continue
        models = client.search_logged_models(experiment_ids=[project.experiment_id],
                                             filter_string=f"source_run_id = '{source}'")
        if models:
            return models[0]
    return None


def _version_for(client: Any, project: ModelRegistry, run: Any, forced: bool) -> str:
    version = versions_by_build(client, project.model_name).get(run.info.run_id)
    if version:
        mv = client.get_model_version(project.model_name, version)
        if mv.tags.get("mlnb.registered_by") == "mlnb promote --force" and integrity.HASH_TAG not in mv.tags:
            _record_hash(client, project.model_name, version)  # an earlier forced promotion died before it
        return version
    model = _trained_model(client, project, run) if forced else None
    if model is None:
        raise PromotionRefused(f"run {run.info.run_id}: no registered model to promote (its export task did "
                               f"not run{'' if forced else '; --force registers its trained model, if any'})")
    mv = client.create_model_version(
        project.model_name, f"models:/{model.model_id}", run_id=model.source_run_id, model_id=model.model_id,
        tags={"mlnb.build_run_id": run.info.run_id, "mlnb.registered_by": "mlnb promote --force"})
    _record_hash(client, project.model_name, str(mv.version))
    return str(mv.version)


def _record_hash(client: Any, name: str, version: str) -> None:
    """Tag a version registered here with its files' hash, as export does, so `mlnb serve` can check it."""
    with tempfile.TemporaryDirectory(prefix="mlnb-hash-") as tmp:
        path = mlflow_runs.download(f"models:/{name}/{version}", tmp)
        client.set_model_version_tag(name, version, integrity.HASH_TAG, integrity.model_sha256(path))


def _tag_version(client: Any, project: ModelRegistry, version: str, record: audit.AuditRecord) -> None:
    done, noun = ("mlnb.promoted", "mlnb.promotion") if record.action == "promote" else \
        ("mlnb.rolled_back", "mlnb.rollback")
    whole = json.dumps(record.to_dict(), sort_keys=True)
    if len(whole) > TAG_MAX:  # always valid JSON with the transaction id (a retry looks for it)
        whole = json.dumps({k: v for k, v in record.to_dict().items() if k in COMPACT}, sort_keys=True)[:TAG_MAX]
    tags = {f"{done}_at": record.time, f"{done}_by": record.user, f"{noun}_note": record.note[:TAG_MAX],
            "mlnb.last_promotion": whole}
    if record.action == "promote":
        tags.update({"mlnb.build_run_id": record.run_id or "", "mlnb.promotion_forced": str(record.forced).lower()})
    for key, value in tags.items():
        client.set_model_version_tag(project.model_name, version, key, value)


def promotions(project: ModelRegistry) -> list[dict[str, Any]]:
    """The audit trail, oldest first."""
    return audit.read(project.root)
