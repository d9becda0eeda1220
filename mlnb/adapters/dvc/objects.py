"""DVC's content-addressed objects, read and verified without DVC (pure, fast).

DVC 3 stores a file with md5 ``abcd...`` as ``<cache or remote>/files/md5/ab/cd...``; a tracked
directory is a ``.dir`` object (a JSON list of ``{"md5", "relpath"}``) plus one object per file.
``dvc.lock`` and ``*.dvc`` files name the objects a workspace needs. ``verify`` re-hashes each
object so a flipped byte is caught and named (the output path and the object), which plain
``dvc pull`` does not do for objects already in the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlnb.core.yamlio import DVC_LIMITS, read_yaml
from mlnb.errors import UserInputError

SKIP_DIRS = {".git", ".dvc", ".venv", "node_modules", "__pycache__", ".ipynb_checkpoints"}


@dataclass(frozen=True)
class Entry:
    path: str  # workspace path (relative to the project root) the object is checked out to
    md5: str  # with the ``.dir`` suffix for directories


@dataclass(frozen=True)
class Problem:
    path: str
    md5: str
    kind: str  # missing | corrupt
    where: Path  # the object file

    def describe(self) -> str:
        return f"{self.path}: object {self.md5} {self.kind} ({self.where})"


def object_path(base: Path, md5: str) -> Path:
    return base / "files" / "md5" / md5[:2] / md5[2:]


def file_md5(path: Path) -> str:
    digest = hashlib.md5()  # DVC's content address; not used for security
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _outs(data: object, base: str) -> Iterator[Entry]:
    for out in (data or {}).get("outs", []) if isinstance(data, dict) else []:
        if isinstance(out, dict) and out.get("md5") and out.get("path"):
            yield Entry(os.path.normpath(os.path.join(base, out["path"])), str(out["md5"]))


def needed(root: Path) -> list[Entry]:
    """Objects the workspace needs: every out in ``dvc.lock`` and in ``*.dvc`` files."""
    entries: list[Entry] = []
    lock = root / "dvc.lock"
    if lock.exists():
        data = read_yaml(lock, UserInputError, **DVC_LIMITS) or {}
        for stage in (data.get("stages") or {}).values():
            entries.extend(_outs(stage, ""))
    for path in dvc_files(root):
        entries.extend(needed_by(path, root))
    return entries


def needed_by(dvc_file: Path, root: Path) -> list[Entry]:
    """The outs one ``*.dvc`` file names (paths relative to ``root``)."""
    rel = os.path.relpath(dvc_file.parent, root)
    return list(_outs(read_yaml(dvc_file, UserInputError, **DVC_LIMITS), "" if rel == "." else rel))


def ignored_dirs(root: Path) -> set[str]:
    """Directories the project's ``.dvcignore`` names plainly (``name/`` or ``/a/b/``; globs and
    negations are left to DVC): a bare name matches at any depth, a path from the root."""
    path = root / ".dvcignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return {ln.strip().strip("/") for ln in lines
            if ln.strip().endswith("/") and not ln.lstrip().startswith(("#", "!")) and not set("*?[") & set(ln)}


def dvc_files(root: Path) -> list[Path]:
    """The project's ``*.dvc`` files (data tracked with ``dvc add``), as DVC sees them: not under
    ``products/`` nor a directory ``.dvcignore`` names (e.g. ``.mlnb/``, the nbval workspace, which
    holds a copy of the project with its own ``data/raw.dvc``)."""
    ignored = ignored_dirs(root) | SKIP_DIRS | {"products"}
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if d not in ignored and (rel / d).as_posix() not in ignored)
        found.extend(Path(dirpath) / name for name in sorted(filenames) if name.endswith(".dvc"))
    return found


def check_object(obj: Path, md5: str) -> str | None:
    if not obj.is_file():
        return "missing"
    return None if file_md5(obj) == md5.removesuffix(".dir") else "corrupt"


def verify(base: Path, entries: list[Entry]) -> list[Problem]:
    """Re-hash every object ``entries`` need under ``base`` (a cache or a local remote)."""
    problems: list[Problem] = []
    for entry in entries:
        obj = object_path(base, entry.md5)
        kind = check_object(obj, entry.md5)
        if kind:
            problems.append(Problem(entry.path, entry.md5, kind, obj))
            continue
        if entry.md5.endswith(".dir"):
            try:
                listing = json.loads(obj.read_text(encoding="utf-8"))
            except ValueError:
                problems.append(Problem(entry.path, entry.md5, "corrupt", obj))
                continue
            for item in listing:
                sub = object_path(base, item["md5"])
                kind = check_object(sub, item["md5"])
                if kind:
                    problems.append(Problem(f"{entry.path}/{item['relpath']}", item["md5"], kind, sub))
    return problems
