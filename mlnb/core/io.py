"""Atomic writes and path safety.

Everything mlnb writes itself goes through :func:`atomic_write` (temp file in the
same directory, fsync, ``os.replace``), so a crash never leaves a half-written file
that a later build could mistake for a fresh product.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mlnb.core.entry import find_default
from mlnb.errors import UnsafePathError, UserInputError

PROJECT_MARKER = "pipeline.yaml"


def _file_mode(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temp file beside ``path``; on success fsync it and move it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.chmod(tmp, _file_mode(path))  # mkstemp makes 0600; keep the file's mode, or the umask's default
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for writers that want a file name
    (``df.to_parquet``, ``fig.savefig``); moved over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _file_mode(path))
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a fresh temp directory beside ``path``; on success it replaces ``path``.

    The old directory (if any) is renamed aside first and removed afterwards, so at
    every instant ``path`` is either the complete old or the complete new tree.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes 0700; products should look like any directory
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of a block (children started in it inherit them)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one line to an append-only log with a single ``O_APPEND`` write, then fsync (callers
    that write concurrently hold a lock; a reader never sees half a line from an earlier writer)."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """An exclusive advisory lock (``flock``) on ``path``, held for the block, across processes."""
    import fcntl

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a directory's entries (a rename, an unlink) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Atomically write ``data`` as pretty, key-sorted JSON."""
    with atomic_write(path, encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, default=str)
        fh.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read JSON, turning a parse error into a one-line error naming the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise UserInputError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest directory at or above ``start`` holding ``pipeline.yaml`` (or a package's
    ``setup.py`` with ``src/<package>/pipeline.yaml``, :func:`mlnb.core.entry.find_default`)."""
    return find_default(start).root


def inside(root: str | os.PathLike[str], path: str | os.PathLike[str], what: str = "path") -> Path:
    """Resolve ``path`` against ``root`` and refuse anything that escapes it."""
    if "\0" in str(path):
        raise UnsafePathError(f"{what} {str(path)!r} contains a NUL character")
    root = Path(root).resolve()
    resolved = (root / path).resolve()
    if resolved != root and root not in resolved.parents:
        raise UnsafePathError(f"{what} {str(path)!r} is outside the project {root}")
    return resolved


def shown(path: Path, root: Path) -> str:
    """``path`` as messages show it: relative to ``root`` when inside it (a state directory moved out of
    the project by ``MLNB_STATE_DIR`` is shown whole)."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
