"""The project's sources as one archive a worker unpacks: notebooks, scripts, ``pipeline.yaml``, ``params.yaml``,
the project's own modules and data schemas; what git would commit (tracked files and untracked ones not
ignored), or in a project without git every file outside what mlnb and the build write.

Never in it: task products, mlnb's state directory, the MLflow store, DVC's cache, DVC-tracked data (a worker
fetches those by hash from the remote: :func:`dvc_data`). The digest is of the contents (path and bytes of
every file), so the same sources give the same digest on every build and a worker unpacks them once.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from mlnb.adapters import git
from mlnb.adapters.dvc.objects import SKIP_DIRS, dvc_files
from mlnb.core import settings
from mlnb.core.project import Project
from mlnb.core.yamlio import DVC_LIMITS, read_yaml
from mlnb.errors import UserInputError

MAX_BYTES = 200 * 1024 * 1024
_NEVER = {"mlflow.db", "mlartifacts", "mlruns", ".git", ".dvc/cache", ".dvc/tmp"}


@dataclass(frozen=True)
class Bundle:
    digest: str
    data: bytes  # a gzipped tar
    files: int


def source_files(project: Project) -> list[str]:
    """The sources' paths, relative to the project root (what :func:`make_bundle` packs)."""
    root = project.root.resolve()
    excluded = _excluded(project)
    listed = git.listed_files(root)
    names = listed if listed is not None else _walk(root)
    return [n for n in names if not _under(n, excluded) and ((root / n).is_file() or (root / n).is_symlink())]


def make_bundle(project: Project) -> Bundle:
    root = project.root.resolve()
    files = source_files(project)
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for name in files:
            path = root / name
            if path.is_symlink():  # e.g. env.yaml -> params.yaml: kept as a link when it stays inside
                target = os.readlink(path)
                if not path.resolve().is_relative_to(root) or os.path.isabs(target):
                    raise UserInputError(f"{name}: a symbolic link to {target}, outside the project: workers "
                                         "would not have it")
                info = tarfile.TarInfo(name)
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
                digest.update(name.encode() + b"\0->" + target.encode())
                continue
            data = path.read_bytes()
            total += len(data)
            if total > MAX_BYTES:
                raise UserInputError(f"the project's sources are over {MAX_BYTES >> 20} MB ({name} and before): "
                                     "track large files with DVC (`dvc add`), which workers fetch by hash")
            digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), (root / name).stat().st_mode & 0o755 | 0o600
            tar.addfile(info, io.BytesIO(data))
    return Bundle(digest.hexdigest()[:24], buffer.getvalue(), len(files))


def dvc_data(root: Path) -> list[Path]:
    """The workspace paths of the project's DVC-tracked data (``*.dvc`` files' outputs)."""
    paths = []
    for dvc_file in dvc_files(root):
        data = read_yaml(dvc_file, UserInputError, **DVC_LIMITS)
        for out in (data or {}).get("outs", []) if isinstance(data, dict) else []:
            if isinstance(out, dict) and isinstance(out.get("path"), str):
                paths.append((dvc_file.parent / out["path"]).resolve())
    return paths


def _excluded(project: Project) -> set[str]:
    root = project.root.resolve()
    out = set(_NEVER)
    state = settings.state_dir(root).resolve()
    if state.is_relative_to(root):
        out.add(state.relative_to(root).as_posix())
    for task in project.spec.tasks.values():
        for product in task.products.values():
            if product.resolve().is_relative_to(root):
                out.add(product.resolve().relative_to(root).as_posix())
    out.add("products")  # mlnb's own (last_build.json, _failed/) and the usual home of products
    for path in dvc_data(root):
        if path.is_relative_to(root):
            out.add(path.relative_to(root).as_posix())
    return out


def _under(name: str, excluded: set[str]) -> bool:
    parts = name.split("/")
    return any("/".join(parts[:i]) in excluded for i in range(1, len(parts) + 1))


def _walk(root: Path) -> list[str]:
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        rel = Path(dirpath).relative_to(root)
        found.extend((rel / f).as_posix() for f in sorted(filenames))
    return found
