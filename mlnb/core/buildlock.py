"""One build at a time per project: the build lock, ``.mlnb/build.lock``.

``mlnb build`` (and ``mlnb run``) hold an exclusive POSIX record lock (``fcntl`` ``F_SETLK``) on
the file for the whole build, whoever started it: a terminal, the JupyterLab Pipeline panel, CI. A
second build is refused at once with the holder's pid (:class:`~mlnb.errors.BuildRunning`).

Why a POSIX lock rather than ``flock``: the kernel reports the holder's pid (``F_GETLK``), so a
refusal, the Pipeline panel and its Stop button name the running build without trusting a pid
written in a file, and asking does not take the lock (a status probe can never make a real build
fail). The lock dies with its process: a killed build (SIGKILL, OOM) leaves no stale lock, and it
is not inherited by the build's forked kernels. One caveat of POSIX locks: closing *any* descriptor
of the file in the holding process releases it, so only this module opens the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlnb.core import settings
from mlnb.errors import BuildRunning

LOCK_FILE = Path("build.lock")  # under the state directory (MLNB_STATE_DIR)
_FLOCK = "hhqqi4x"  # struct flock on Linux (x86-64, arm64): type, whence, start, len, pid


def lock_path(root: Path) -> Path:
    return settings.state_dir(root) / LOCK_FILE


def holder(root: Path) -> int | None:
    """The pid of the process building ``root`` now, or None (takes no lock)."""
    path = lock_path(root)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        probe = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        kind, _, _, _, pid = struct.unpack(_FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, probe))
    finally:
        os.close(fd)
    return None if kind == fcntl.F_UNLCK else pid


def refusal(root: Path, pid: int | None) -> str:
    """The one line a second build gets."""
    who = f"pid {pid}" if pid else "another process"
    return (f"{lock_path(root).relative_to(root)}: a build is already running in this project ({who}); "
            "wait for it to finish or stop it")


@contextmanager
def build_lock(root: Path, origin: str = "terminal") -> Iterator[None]:
    """Hold the project's build lock for the block, or raise :class:`BuildRunning` at once."""
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise BuildRunning(refusal(root, holder(root))) from None
        # for people reading the file; the lock itself (and F_GETLK) is what counts
        info = json.dumps({"pid": os.getpid(), "started": time.time(), "origin": origin}) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
