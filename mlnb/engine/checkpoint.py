"""Inside a task's kernel: a forked checkpoint before every cell, a namespace snapshot on failure.

Installed by the fork server's kernel when the build sets ``MLNB_SNAPSHOT_DIR`` (the fork
engine only). A copy costs ~20 ms a cell here (the fork, the exit, the copy-on-write faults of the
cell), more than re-running a short prefix: copies start once the task's cells have taken
``MLNB_SNAPSHOT_AFTER_S`` (1 s); a task failing before that records ``cheap.json`` instead, and
``mlnb debug`` / ``--resume`` re-run its cheap first cells. Life cycle, per cell::

    pre_run_cell:  fork() -> a frozen copy of the kernel, blocked on a pipe (copy-on-write: it
                   costs a page-table copy, not the memory)
    post_run_cell: the cell succeeded -> the copy is told to exit
                   the cell raised    -> the copy (the state *before* the failing cell) pickles
                   the user namespace into MLNB_SNAPSHOT_DIR, then exits

So the snapshot is exactly what the failing cell started from, not what it left half-changed.
Each variable is pickled on its own with cloudpickle (functions and classes defined in the
notebook go by value); what cannot be pickled, or would pass ``MLNB_SNAPSHOT_MAX_MB``, is listed
with the reason, never silently dropped. Modules are recorded by name and re-imported on restore.
The copy never runs user code and writes nothing else; if it does not finish in
``MLNB_SNAPSHOT_TIMEOUT`` seconds it is killed and the snapshot says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import sys
import time
import types
from pathlib import Path
from typing import Any

from mlnb.core import settings

ENV = "MLNB_SNAPSHOT_DIR"
LIMIT_ENV = "MLNB_SNAPSHOT_MAX_MB"
RESUME_ENV = "MLNB_RESUME_FROM"
COUNT_ENV = "MLNB_RESUME_COUNT"
TIMEOUT_ENV = "MLNB_SNAPSHOT_TIMEOUT"
AFTER_ENV = "MLNB_SNAPSHOT_AFTER_S"
CHEAP = "cheap.json"  # no snapshot: the cells before the failing one were cheaper to re-run
NAMESPACE = "namespace.pkl"
CONTENTS = "snapshot.json"
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}
# Bound at import (before any user code): a task that monkey-patches json or pickle cannot garble
# its own snapshot.
_dumps_json, _loads_json, _dumps_pickle, _loads_pickle = json.dumps, json.loads, pickle.dumps, pickle.loads


def _user_items(ns: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in ns.items() if not k.startswith("_") and k not in _IPYTHON_NAMES]


def write_snapshot(ns: dict[str, Any], out_dir: Path, limit_bytes: int) -> dict[str, Any]:
    """Pickle what can be pickled of ``ns`` into ``out_dir`` (replaced as a whole); its contents."""
    import cloudpickle

    blobs: dict[str, bytes] = {}
    modules: dict[str, str] = {}
    unpicklable: dict[str, str] = {}
    too_big: list[str] = []
    total = 0
    for name, value in _user_items(ns):
        if isinstance(value, types.ModuleType):
            modules[name] = value.__name__
            continue
        try:
            blob = cloudpickle.dumps(value)
        except BaseException as exc:
            unpicklable[name] = f"{type(value).__name__}: {type(exc).__name__}: {str(exc)[:120]}"
            continue
        if total + len(blob) > limit_bytes:
            too_big.append(name)
            continue
        blobs[name] = blob
        total += len(blob)
    contents = {"saved": sorted(blobs), "modules": modules, "unpicklable": unpicklable, "too_big": too_big,
                "bytes": total, "limit_bytes": limit_bytes, "taken_at": time.time()}
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / NAMESPACE).write_bytes(_dumps_pickle(blobs, protocol=pickle.HIGHEST_PROTOCOL))
    (tmp / CONTENTS).write_text(_dumps_json(contents, indent=1))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return contents


def restore(ns: dict[str, Any], snapshot_dir: str | Path) -> dict[str, Any]:
    """Put a snapshot's modules and variables back into ``ns``; the snapshot's contents."""
    import importlib
    import warnings

    snapshot_dir = Path(snapshot_dir)
    contents = _loads_json((snapshot_dir / CONTENTS).read_text())
    with warnings.catch_warnings():  # tqdm.auto in a kernel without ipywidgets: a red warning that says nothing
        warnings.filterwarnings("ignore", message="IProgress not found")
        for alias, module in contents["modules"].items():
            with contextlib.suppress(ImportError):
                ns[alias] = importlib.import_module(module)
        blobs = _loads_pickle((snapshot_dir / NAMESPACE).read_bytes())
        for name, blob in blobs.items():
            ns[name] = _loads_pickle(blob)
    return contents


class Checkpointer:
    def __init__(self, shell: Any, out_dir: Path, limit_bytes: int, timeout: float, after: float = 1.0) -> None:
        self.shell, self.out_dir, self.limit, self.timeout = shell, out_dir, limit_bytes, timeout
        self.after = after  # seconds of cells before the first copy
        self.spent = 0.0
        self.started = time.monotonic()
        self.child: tuple[int, int] | None = None  # (pid, write end of its pipe)

    def pre(self, info: Any = None) -> None:
        self._release()
        self.started = time.monotonic()
        if self.spent < self.after:  # the cells so far are cheaper to re-run than a copy: none yet
            return
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the frozen copy: wait for the verdict on the cell about to run
            try:
                os.close(w)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupt is for the cell, not for us
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                if os.read(r, 1) == b"s":
                    write_snapshot(self.shell.user_ns, self.out_dir, self.limit)
            finally:
                os._exit(0)
        os.close(r)
        self.child = (pid, w)

    def post(self, result: Any) -> None:
        failed = getattr(result, "error_in_exec", None) is not None
        before, self.spent = self.spent, self.spent + time.monotonic() - self.started
        if self.child is None:
            if failed:  # say why there is no snapshot: the build records it, `mlnb debug` re-runs instead
                shutil.rmtree(self.out_dir, ignore_errors=True)
                self.out_dir.mkdir(parents=True, exist_ok=True)
                (self.out_dir / CHEAP).write_text(_dumps_json({"seconds_before": round(before, 3),
                                                               "threshold_s": self.after}))
            return
        if not failed:
            self._release()
            return
        pid, w = self.child
        self.child = None
        try:
            os.write(w, b"s")
        finally:
            os.close(w)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # the cell's own os.wait() reaped it
                return
            if done:
                return
            time.sleep(0.01)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with contextlib.suppress(OSError):
            (self.out_dir.parent / f"{self.out_dir.name}.timeout").write_text(str(self.timeout))

    def _release(self) -> None:
        """Let the last copy go: EOF on its pipe, it exits without writing; reap it now (a copy left
        exiting in the background holds the kernel's exit up by seconds, measured)."""
        if self.child is not None:
            pid, w = self.child
            self.child = None
            os.close(w)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def install(shell: Any, environ: dict[str, str] | None = None) -> Checkpointer | None:
    """Register the checkpoint hooks (when ``MLNB_SNAPSHOT_DIR`` is set) and restore a snapshot
    to resume from (when ``MLNB_RESUME_FROM`` is set); called before the kernel's first cell."""
    resume = settings.get(RESUME_ENV, environ)
    if resume:
        restore(shell.user_ns, resume)
        count = settings.get(COUNT_ENV, environ)
        if count is not None:  # number the resumed cells on from the restored ones
            shell.execution_count = count
    out = settings.get(ENV, environ)
    limit_mb = settings.get(LIMIT_ENV, environ)
    if not out or not hasattr(os, "fork") or limit_mb <= 0:
        return None
    import cloudpickle  # noqa: F401 - imported now, not in the forked copy
    checkpointer = Checkpointer(shell, out, int(limit_mb * 1024 * 1024), settings.get(TIMEOUT_ENV, environ),
                                settings.get(AFTER_ENV, environ))
    shell.events.register("pre_run_cell", checkpointer.pre)
    shell.events.register("post_run_cell", checkpointer.post)
    sys.modules[__name__].active = checkpointer  # type: ignore[attr-defined] - for tests and debugging
    return checkpointer
