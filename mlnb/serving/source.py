"""Where a served model comes from: resolve a model URI, fetch its files, check their hash.

``models:/<name>@<alias>`` (the default, ``@champion``), ``models:/<name>/<version>``,
``runs:/<run_id>/<path>`` or a local directory: an MLflow model directory (``MLmodel``) with the
``info.json`` that the export task or ``mlnb fetch-model`` writes beside it (or a directory holding
``model/`` and ``info.json``). Registry versions are fetched by version number, never by alias, so a
move of the alias during the download cannot mix two versions. The files' hash must equal the
version's ``mlnb.artifact_sha256`` tag (or ``info.json``'s ``artifact_sha256``); ``verify=False``
is the explicit opt-out.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from mlnb.core import integrity
from mlnb.errors import FetchFailed, IntegrityError, ServingError, UserInputError

_MODELS = re.compile(r"models:/(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]{0,127})(?:@(?P<alias>[A-Za-z0-9_\-]{1,64})"
                     r"|/(?P<version>[0-9]{1,9}))")
_RUNS = re.compile(r"runs:/(?P<run>[0-9a-f]{32})/(?P<path>[A-Za-z0-9_.\-/]{1,256})")


@dataclass(frozen=True)
class Identity:
    """What is being served, as ``GET /version`` reports it."""

    model_uri: str
    model_name: str = ""
    model_version: str = ""
    alias: str = ""
    run_id: str = ""
    build_run_id: str = ""
    git_commit: str = ""
    artifact_sha256: str = ""
    verified: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelRef:
    """A parsed model URI."""

    uri: str
    name: str = ""
    alias: str = ""
    version: str = ""
    run_id: str = ""
    path: str = ""

    @property
    def downloaded(self) -> bool:
        """Fetched into the cache (and so removed by :func:`discard`), unlike a local directory."""
        return not self.path or bool(self.run_id)

    @property
    def watchable(self) -> bool:
        """An alias can move; ``mlnb serve`` then swaps to its new version."""
        return bool(self.alias)


def parse_uri(uri: str) -> ModelRef:
    if uri.startswith("models:/"):
        m = _MODELS.fullmatch(uri)
        if not m:
            raise UserInputError(f"model URI {uri!r}: expected models:/<name>@<alias> or models:/<name>/<version>")
        return ModelRef(uri, name=m["name"], alias=m["alias"] or "", version=m["version"] or "")
    if uri.startswith("runs:/"):
        m = _RUNS.fullmatch(uri)
        if not m or ".." in m["path"].split("/"):
            raise UserInputError(f"model URI {uri!r}: expected runs:/<32-hex run id>/<artifact path>")
        return ModelRef(uri, run_id=m["run"], path=m["path"])
    path = uri.removeprefix("file://")
    if "://" in path or ":/" in path.split("/")[0]:
        raise UserInputError(f"model URI {uri!r}: expected models:/..., runs:/... or a local directory")
    return ModelRef(uri, path=path)


def _client() -> Any:
    from mlnb.adapters.mlflow.runs import client

    return client()


def current_version(ref: ModelRef, client: Any = None) -> str:
    """The version an alias points at now (what the hot-swap watcher polls)."""
    from mlnb.adapters.mlflow.registry import alias_version, translated

    with translated(lambda message: ServingError(f"{ref.uri}: {message}")):
        return alias_version(client or _client(), ref.name, ref.alias)


def version_if_set(ref: ModelRef, client: Any = None) -> str | None:
    """The version an alias points at now, or None when it is not set (a challenger's may come and go)."""
    from mlnb.adapters.mlflow.registry import alias_version_if_set, translated

    with translated(lambda message: ServingError(f"{ref.uri}: {message}")):
        return alias_version_if_set(client or _client(), ref.name, ref.alias)


def fetch(ref: ModelRef, cache_dir: Path, *, verify: bool = True, version: str | None = None) -> tuple[Path, Identity]:
    """Download (or locate) the model and check its hash -> (local MLflow model dir, identity).

    Downloads go to a new directory under ``cache_dir`` that the caller owns (``discard`` removes it)."""
    if ref.path and not ref.run_id:
        return _local(ref, verify)
    from mlnb.adapters.mlflow.registry import translated
    from mlnb.adapters.mlflow.runs import download

    client = _client()
    try:
        with translated(lambda message: FetchFailed(f"{ref.uri}: {message}")):
            if ref.run_id:
                identity, expected = _run_identity(client, ref)
            else:
                identity, expected = _version_identity(client, ref, version)
            dest = Path(tempfile.mkdtemp(prefix="model-", dir=private_dir(cache_dir)))
            try:
                source = identity.model_uri if ref.run_id else f"models:/{ref.name}/{identity.model_version}"
                path = Path(download(source, dest))
            except BaseException:
                shutil.rmtree(dest, ignore_errors=True)
                raise
    except OSError as exc:  # a connection dropped mid-download (requests' errors are OSErrors too)
        raise FetchFailed(f"{ref.uri}: {type(exc).__name__}: {exc}") from None
    try:
        return path, _checked(path, identity, expected, verify)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def private_dir(path: Path) -> Path:
    """``path``, created 0700 if missing; refused if another user owns it or others may write to it (they
    could swap the files between the hash check and the load)."""
    import os
    import stat

    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
    except OSError as exc:
        raise ServingError(f"{path}: cannot use as the download cache: {exc.strerror}") from None
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ServingError(f"{path}: the download cache must be yours and not writable by others "
                           "(choose another with --cache-dir)")
    return path


def discard(path: Path, cache_dir: Path) -> None:
    """Remove a download made by :func:`fetch` (never anything outside ``cache_dir``)."""
    path, cache_dir = Path(path).resolve(), Path(cache_dir).resolve()
    for parent in (path, *path.parents):
        if parent.parent == cache_dir:
            shutil.rmtree(parent, ignore_errors=True)
            return


def _checked(path: Path, identity: Identity, expected: str, verify: bool) -> Identity:
    if not (path / "MLmodel").is_file():
        raise ServingError(f"{identity.model_uri}: no MLmodel file: not an MLflow model")
    if not verify:
        return replace(identity, artifact_sha256=integrity.model_sha256(path), verified=False)
    if not expected:
        raise IntegrityError(f"{identity.model_uri}: no {integrity.HASH_TAG} recorded for this model, so its files "
                             "cannot be checked (export it with the pipeline's export task, or pass --no-verify)")
    integrity.verify(path, expected, identity.model_uri)
    return replace(identity, artifact_sha256=expected)


def _version_identity(client: Any, ref: ModelRef, version: str | None) -> tuple[Identity, str]:
    if version is None and ref.alias:
        mv = client.get_model_version_by_alias(ref.name, ref.alias)
    else:
        mv = client.get_model_version(ref.name, version or ref.version)
    tags = dict(mv.tags or {})
    build = tags.get("mlnb.build_run_id", "")
    identity = Identity(model_uri=ref.uri, model_name=ref.name, model_version=str(mv.version), alias=ref.alias,
                        run_id=mv.run_id or "", build_run_id=build, git_commit=_git_commit(client, build))
    return identity, tags.get(integrity.HASH_TAG, "")


def _run_identity(client: Any, ref: ModelRef) -> tuple[Identity, str]:
    run = client.get_run(ref.run_id)
    expected, name, version = "", "", ""
    for mv in client.search_model_versions(f"run_id = '{ref.run_id}'"):
        if (mv.tags or {}).get(integrity.HASH_TAG):
            expected, name, version = mv.tags[integrity.HASH_TAG], mv.name, str(mv.version)
            break
    return Identity(model_uri=ref.uri, model_name=name, model_version=version, run_id=ref.run_id,
                    git_commit=run.data.tags.get("mlnb.git_commit", "")), expected


def _git_commit(client: Any, build_run_id: str) -> str:
    if not build_run_id:
        return ""
    try:
        return client.get_run(build_run_id).data.tags.get("mlnb.git_commit", "")
    except Exception:  # the build run was deleted: the version still serves
        return ""


def _local(ref: ModelRef, verify: bool) -> tuple[Path, Identity]:
    path = Path(ref.path).expanduser().resolve()
    if (path / "model" / "MLmodel").is_file():
        path = path / "model"
    if not (path / "MLmodel").is_file():
        raise ServingError(f"{ref.path}: no MLmodel file here (an MLflow model directory, or a directory written "
                           "by mlnb fetch-model)")
    info_path = path.parent / "info.json"
    info: dict[str, Any] = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ServingError(f"{info_path}: not valid JSON") from None
        if not isinstance(info, dict):
            raise ServingError(f"{info_path}: expected a JSON object")
    run_id = ""
    try:
        import yaml

        run_id = str((yaml.safe_load((path / "MLmodel").read_text(encoding="utf-8")) or {}).get("run_id") or "")
    except Exception:  # an unreadable MLmodel is reported by the loader with its own message
        pass
    identity = Identity(model_uri=str(path), model_name=str(info.get("model_name", "")),
                        model_version=str(info.get("version", "")), run_id=str(info.get("run_id") or run_id),
                        build_run_id=str(info.get("build_run_id", "")), git_commit=str(info.get("git_commit", "")))
    expected = str(info.get("artifact_sha256", ""))
    if verify and not expected:
        raise IntegrityError(f"{path}: no artifact_sha256 recorded in {info_path}, so the model's files cannot be "
                             "checked (serve the export task's products/export/model, a directory written by "
                             "mlnb fetch-model, or pass --no-verify)")
    return path, _checked(path, identity, expected, verify)


def write_fetched(path: Path, identity: Identity, dest: Path) -> Path:
    """``mlnb fetch-model``: copy a verified model to ``dest/model`` with ``dest/info.json``, atomically."""
    from mlnb.core.io import atomic_dir, write_json

    dest = Path(dest)
    if (dest / "model").exists():
        raise UserInputError(f"{dest / 'model'}: already exists (choose an empty destination)")
    with atomic_dir(dest / "model") as tmp:
        shutil.copytree(path, tmp, dirs_exist_ok=True)
    info = identity.to_dict()
    write_json(dest / "info.json", {**info, "version": identity.model_version, "path": "model"})
    return dest
