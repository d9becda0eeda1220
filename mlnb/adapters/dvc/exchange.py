"""Products exchanged through a DVC remote, by content hash: what a cluster worker or an orchestrator step
sends back to the build and fetches from upstream (no shared filesystem).

A *manifest* names files by their path relative to the project and their md5, DVC's content address:
``{"task": "train", "products": {"products/model.pkl": "ab12...", ...}}`` (a directory product is listed
file by file). Objects live where ``dvc push`` puts them (``<remote>/files/md5/ab/12...``), so the exchange
shares storage with the project's own pushes, and any remote DVC can reach works (a local directory, S3, GCS,
SSH, ...: DVC's filesystems, credentials from the environment or the provider's usual configuration).

Both directions are checked: an upload lands under a temporary name and is renamed into place (a worker
killed mid-upload leaves no object under a content address), a download is hashed before it is moved into
the workspace (a corrupt or truncated object is refused, naming the path and the object), and a file is
written into the workspace atomically.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.adapters.dvc.objects import file_md5
from mlnb.errors import UserInputError, VersioningError

_MD5 = re.compile(r"[0-9a-f]{32}")
Manifest = dict[str, str]  # path relative to the project root -> md5


@dataclass(frozen=True)
class Store:
    """A DVC remote opened for object exchange: its filesystem and the path of its root in it."""

    url: str
    fs: Any
    path: str

    def object(self, md5: str) -> str:
        return self.fs.join(self.path, "files", "md5", md5[:2], md5[2:])


def open_store(url: str) -> Store:
    """The remote at ``url`` (a path or any URL DVC supports); one line when DVC cannot open it."""
    from dvc.fs import get_cloud_fs

    try:
        cls, config, path = get_cloud_fs({}, url=url)
        fs = cls(**config)
    except Exception as exc:  # an unknown scheme, a missing plugin (dvc-s3, ...), a bad URL
        raise UserInputError(f"DVC remote {url}: cannot be opened ({type(exc).__name__}: {exc})") from None
    return Store(url, fs, path)


def files_of(root: Path, paths: Iterable[Path]) -> list[Path]:
    """The files of ``paths`` (a directory: every file under it, sorted), each inside ``root``."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()))
        elif path.is_file():
            out.append(path)
    for path in out:
        if not path.resolve().is_relative_to(root.resolve()):
            raise UserInputError(f"{path}: outside the project {root}: only the project's files are exchanged")
    return out


def push(store: Store, root: Path, paths: Iterable[Path], known: dict[Path, str] | None = None) -> Manifest:
    """Upload the files of ``paths`` that the remote does not hold yet; their manifest. ``known`` caches the
    md5 of files hashed before (by path), so a file read by many tasks is hashed once per build."""
    manifest: Manifest = {}
    for path in files_of(root, paths):
        md5 = known.get(path) if known is not None else None
        if md5 is None:
            md5 = file_md5(path)
            if known is not None:
                known[path] = md5
        target = store.object(md5)
        if not store.fs.exists(target):
            store.fs.makedirs(store.fs.parent(target), exist_ok=True)
            partial = f"{target}.{uuid.uuid4().hex}.tmp"
            store.fs.put_file(str(path), partial)
            store.fs.mv(partial, target)
        manifest[path.relative_to(root).as_posix()] = md5
    return manifest


def push_bytes(store: Store, data: bytes) -> str:
    """Upload ``data`` as one object (unless the remote holds it); its md5."""
    md5 = hashlib.md5(data).hexdigest()  # DVC's content address; not used for security
    target = store.object(md5)
    if not store.fs.exists(target):
        store.fs.makedirs(store.fs.parent(target), exist_ok=True)
        partial = f"{target}.{uuid.uuid4().hex}.tmp"
        with store.fs.open(partial, "wb") as fh:
            fh.write(data)
        store.fs.mv(partial, target)
    return md5


def fetch_bytes(store: Store, md5: str, scratch: Path) -> bytes:
    """The object ``md5`` (a directory listing's ends in ``.dir``, as DVC names it), hash-checked (downloaded
    through a file in ``scratch``, removed after)."""
    path = _download(store, md5, scratch / f".{md5}.{uuid.uuid4().hex}")
    try:
        return path.read_bytes()
    finally:
        path.unlink(missing_ok=True)


def tracked(store: Store, root: Path, entries: Iterable[tuple[str, str]]) -> Manifest:
    """The manifest of DVC-tracked outputs given as (path, md5) pairs from ``*.dvc`` files (a directory's
    md5 ends in ``.dir``: its listing is an object too, read from the remote)."""
    import json

    manifest: Manifest = {}
    for path, md5 in entries:
        if md5.endswith(".dir"):
            listing = json.loads(fetch_bytes(store, md5, root))
            for item in listing:
                manifest[(Path(path) / item["relpath"]).as_posix()] = item["md5"]
        else:
            manifest[path] = md5
    return manifest


def fetch(store: Store, root: Path, manifest: Manifest, cache: Path | None = None) -> None:
    """Put every file of ``manifest`` in place under ``root``, hash-checked. ``cache`` (a local directory of
    objects, DVC's layout) keeps what was downloaded, so a worker fetches an object once."""
    for rel, md5 in manifest.items():
        if not _MD5.fullmatch(md5):
            raise UserInputError(f"manifest: {rel!r} has no md5 but {md5[:40]!r}")
        target = (root / rel).resolve()
        if not target.is_relative_to(root.resolve()) or ".." in Path(rel).parts:
            raise UserInputError(f"manifest: {rel!r} is outside the project")
        if target.is_file() and file_md5(target) == md5:
            continue
        local = cache / "files" / "md5" / md5[:2] / md5[2:] if cache is not None else None
        if local is None or not local.is_file() or file_md5(local) != md5:
            local = _download(store, md5, local or target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp"))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        if cache is not None and local.is_relative_to(cache):
            shutil.copyfile(local, tmp)
        else:
            os.replace(local, tmp)
        os.replace(tmp, target)


def _download(store: Store, md5: str, dest: Path) -> Path:
    source = store.object(md5)  # "abc.dir" is stored as files/md5/ab/c.dir and hashes to "abc"
    md5 = md5.removesuffix(".dir")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    try:
        store.fs.get_file(source, str(partial))
    except FileNotFoundError:
        raise VersioningError(f"DVC remote {store.url}: object {md5} is missing ({source})") from None
    got = file_md5(partial)
    if got != md5:
        partial.unlink(missing_ok=True)
        raise VersioningError(f"DVC remote {store.url}: object {md5} is corrupt (its content hashes to {got})")
    os.replace(partial, dest)
    return dest
