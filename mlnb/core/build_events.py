"""Machine-readable progress of the running (or last) build: ``.mlnb/build/events.jsonl``.

Every ``mlnb build`` (from a terminal, the JupyterLab Pipeline panel or anything else) writes one
JSON object per line, so whatever watches the project (the Pipeline panel's server side tails the
file) sees the same build the same way, whoever started it::

    {"event": "build-started", "t": 1718000000.1, "id": "<hex>", "pid": 4242, "origin": "terminal",
     "force": false, "resume": false, "engine": "fork", "params": ["train.C=0.5"]}
    {"event": "task-started", "t": ..., "task": "ingest"}
    {"event": "cell", "t": ..., "task": "ingest", "cell": 3, "cells": 7}     # 3rd of 7 cells started
    {"event": "task-finished", "t": ..., "task": "ingest", "status": "executed", "seconds": 1.2}
    {"event": "build-finished", "t": ..., "ok": true, "interrupted": false, "run_id": "<hex>",
     "tasks": {"ingest": "executed", "train": "skipped"}, "failures": {"train": "cell 2 (...): ..."},
     "error": null}

A build starts a new file (written whole, then moved over the old one, so a reader sees a new inode)
and appends to it, a line at a time, flushed. A build that is killed writes no ``build-finished``:
its reader learns that it ended from the build lock (:mod:`mlnb.core.buildlock`). Writing progress never
fails a build: an unwritable file only loses the events.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mlnb.core import settings
from mlnb.core.io import atomic_write

# What a running build reports per task: (event: started|executed|failed, task, seconds).
Progress = Callable[[str, str, float], None]

EVENTS_FILE = Path("build") / "events.jsonl"  # under the state directory (MLNB_STATE_DIR)
ORIGIN_ENV = "MLNB_BUILD_ORIGIN"  # who started the build: "terminal" unless set (the panel sets "jupyter")


def events_path(root: Path) -> Path:
    return settings.state_dir(root) / EVENTS_FILE


class EventLog:
    """The writer, one per build (thread-safe: cell events come from the executor's worker threads)."""

    def __init__(self, root: Path) -> None:
        self.path = events_path(root)
        self._fh: IO[str] | None = None
        self._lock = threading.Lock()

    def start(self, **fields: Any) -> None:
        first = {"event": "build-started", "t": time.time(), "id": uuid.uuid4().hex, "pid": os.getpid(),
                 "origin": settings.get(ORIGIN_ENV), **fields}
        try:
            with atomic_write(self.path, encoding="utf-8") as fh:
                fh.write(json.dumps(first) + "\n")
            self._fh = self.path.open("a", encoding="utf-8")
        except OSError:
            self._fh = None

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "t": time.time(), **fields}, default=str) + "\n"
        with self._lock:
            if self._fh is None:
                return
            try:
                self._fh.write(line)
                self._fh.flush()
            except OSError:
                self._fh = None

    def progress(self, event: str, task: str, seconds: float) -> None:
        """A :data:`Progress` callback: started | executed | failed."""
        if event == "started":
            self.emit("task-started", task=task)
        else:
            self.emit("task-finished", task=task, status=event, seconds=round(seconds, 3))

    def cell(self, task: str, index: int, total: int) -> None:
        self.emit("cell", task=task, cell=index, cells=total)

    def close(self, **fields: Any) -> None:
        self.emit("build-finished", **fields)
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


@dataclass
class Tail:
    """A reader's position in the events file: the file (inode) and how far it has read."""

    inode: int = -1
    offset: int = 0

    def read(self, path: Path) -> tuple[list[dict[str, Any]], bool]:
        """The complete lines written since the last call, and whether a new build's file began
        (then the events are that file's from its start)."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return [], False
        restarted = st.st_ino != self.inode or st.st_size < self.offset
        if restarted:
            self.inode, self.offset = st.st_ino, 0
        if st.st_size == self.offset:
            return [], restarted
        with path.open("rb") as fh:
            fh.seek(self.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self.offset += end
        events = []
        for raw in data[:end].splitlines():
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("event"), str):
                events.append(event)
        return events, restarted


def read_all(root: Path) -> list[dict[str, Any]]:
    """Every event of the current (or last) build."""
    return Tail().read(events_path(root))[0]
