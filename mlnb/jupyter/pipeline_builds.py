"""The project's builds as the Jupyter server sees them: start, stop, watch.

* **start**: the same ``mlnb build`` as on the command line (``python -m mlnb.cli.main build
  [--force|--resume]``, in the project root, as a child of the server), so MLflow runs, DVC
  recording and the build lock are the CLI's own. Its output goes to ``.mlnb/build/build.log``.
* **stop**: SIGINT to the process holding the build lock (a panel build or a terminal one), the
  CLI's Ctrl-C path (kernels interrupted, failed tasks quarantined, exit 130); if it still runs
  after a while, a second SIGINT (kills the kernels), then SIGTERM, then SIGKILL.
* **watch**: while anyone listens, the events file (:mod:`mlnb.core.build_events`) is tailed and the
  lock polled every :data:`POLL` seconds; each event is pushed to every listener, a build that
  ends without a word (killed) gets a ``build-ended`` event, and a fresh ``snapshot`` (the tasks'
  states on disk) follows the end of every build.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlnb.core import build_events, buildlock, payloads, settings
from mlnb.errors import BuildRunning, MlnbError, UserInputError

POLL = 0.1  # seconds between looks at the events file and the lock while someone listens
START_TIMEOUT = 120.0  # seconds for a started `mlnb build` to take the lock (or exit)
ESCALATION = ((signal.SIGINT, 20.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0))  # after the first SIGINT
MODES = {"build": [], "force": ["--force"], "resume": ["--resume"]}
LOG = Path("build") / "build.log"  # under the state directory (MLNB_STATE_DIR)


class NoBuild(MlnbError):
    """Stop without a running build (HTTP 409)."""

    http_status = 409


class Builds:
    """One per project and server. ``snapshot`` computes the project's state (run in a thread)."""

    def __init__(self, root: Path, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.root = root
        self.snapshot = snapshot
        self.listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._watch: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._finished = True  # the last build seen wrote its build-finished event

    # -- start / stop (blocking: call them in a thread) -------------------------------------------
    def start(self, mode: str) -> payloads.BuildStarted:
        """Start ``mlnb build`` in ``mode`` (build | force | resume); return once it holds the lock
        (or has already finished). Raises BuildRunning while another build runs."""
        if mode not in MODES:
            raise UserInputError(f"request body: field mode: {mode!r} is not one of {', '.join(MODES)}")
        pid = buildlock.holder(self.root)
        if pid is not None:
            raise BuildRunning(buildlock.refusal(self.root, pid))
        log = settings.state_dir(self.root) / LOG
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, build_events.ORIGIN_ENV: "jupyter", "PYTHONUNBUFFERED": "1"}
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "mlnb.cli", "build", *MODES[mode]], cwd=self.root,
                                    env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        running = False
        while not (running := buildlock.holder(self.root) == proc.pid):
            code = proc.poll()
            if code is not None:
                if code == 2:  # refused (another build took the lock first) or bad input: its one line
                    line = _last_error(log) or f"mlnb build exited with {code}"
                    raise BuildRunning(line) if "already running" in line else UserInputError(line)
                break  # it ran (and finished) already
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        # reaps it when it ends (started only now: a waiting thread would hide its exit from poll())
        threading.Thread(target=proc.wait, name=f"mlnb-build-{proc.pid}", daemon=True).start()
        shown = log.relative_to(self.root) if log.is_relative_to(self.root) else log
        return {"pid": proc.pid, "mode": mode, "log": shown.as_posix(), "running": running}

    def stop(self) -> payloads.BuildStopped:
        """SIGINT to the running build (escalating in the background); raises NoBuild."""
        pid = buildlock.holder(self.root)
        if pid is None:
            raise NoBuild("no build is running in this project")
        os.kill(pid, signal.SIGINT)
        return {"pid": pid, "signal": "SIGINT"}

    def escalate(self, pid: int) -> None:
        """After a Stop: if build ``pid`` still holds the lock, signal it harder (in the background)."""
        if self._stopping is None or self._stopping.done():
            self._stopping = asyncio.get_running_loop().create_task(self._escalate(pid))

    async def _escalate(self, pid: int) -> None:
        for signum, wait in ESCALATION:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if buildlock.holder(self.root) != pid:
                    return
                await asyncio.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    # -- watch -----------------------------------------------------------------------------------
    def listen(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.listeners.add(queue)
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._run())
        return queue

    def forget(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.listeners.discard(queue)

    def _push(self, event: dict[str, Any]) -> None:
        for queue in list(self.listeners):
            queue.put_nowait(event)

    def _forward(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            if event["event"] in ("build-started", "build-finished"):
                self._finished = event["event"] == "build-finished"
            self._push(event)

    async def _run(self) -> None:
        tail = build_events.Tail()
        path = build_events.events_path(self.root)
        tail.read(path)  # what is on disk already is in each listener's first snapshot
        running = buildlock.holder(self.root)
        self._finished = running is None
        while self.listeners:
            events = tail.read(path)[0]
            holder = buildlock.holder(self.root)
            if holder != running:
                events += tail.read(path)[0]  # what it wrote just before letting the lock go
            self._forward(events)
            ended = running is not None and holder != running
            if holder != running:
                self._push({"event": "lock", "t": time.time(), "running": holder is not None, "pid": holder})
            if ended and not self._finished:
                self._push({"event": "build-ended", "t": time.time(), "pid": running,
                            "error": "the build process ended without reporting (killed?)"})
            if ended or (holder is None and any(e["event"] == "build-finished" for e in events)):
                await self._push_snapshot()  # the tasks' states on disk after the build
            running = holder
            await asyncio.sleep(POLL)

    async def _push_snapshot(self) -> None:
        try:
            self._push({"event": "snapshot", **await asyncio.to_thread(self.snapshot)})
        except MlnbError as exc:
            self._push({"event": "error", "error": str(exc)})


def _last_error(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    line = next((ln for ln in reversed(lines) if ln.startswith("mlnb: error: ")), lines[-1] if lines else "")
    return line.removeprefix("mlnb: error: ")
