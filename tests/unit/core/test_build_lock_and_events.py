"""The project build lock (one build at a time, no stale lock after a kill) and the build's progress events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlnb.core import build_events, buildlock
from mlnb.errors import BuildRunning
from mlnb.services.pipeline_state import FAILED, RUNNING, UP_TO_DATE, replay
from tests.conftest import REPO

HOLD = ("import sys, time\nfrom pathlib import Path\nfrom mlnb.core.buildlock import build_lock\n"
        "with build_lock(Path(sys.argv[1])):\n    print('held', flush=True)\n    time.sleep(600)\n")


def hold(root: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_build_is_refused_naming_the_holder_and_a_killed_holder_leaves_no_lock(tmp_path: Path) -> None:
    assert buildlock.holder(tmp_path) is None
    proc = hold(tmp_path)
    try:
        assert buildlock.holder(tmp_path) == proc.pid
        with pytest.raises(BuildRunning) as refused, buildlock.build_lock(tmp_path):
            pass
        assert str(refused.value) == (f".mlnb/build.lock: a build is already running in this project "
                                      f"(pid {proc.pid}); wait for it to finish or stop it")
        assert refused.value.exit_code == 2 and refused.value.http_status == 409
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert buildlock.holder(tmp_path) is None  # the kernel let go of it with the process
    with buildlock.build_lock(tmp_path):
        assert json.loads((tmp_path / ".mlnb/build.lock").read_text())["pid"] == os.getpid()


def test_the_tail_reads_whole_lines_and_notices_a_new_build(tmp_path: Path) -> None:
    log = build_events.EventLog(tmp_path)
    log.start(force=True)
    tail = build_events.Tail()
    path = build_events.events_path(tmp_path)
    events, restarted = tail.read(path)
    assert restarted and [e["event"] for e in events] == ["build-started"] and events[0]["force"] is True
    log.progress("started", "a", 0.0)
    with path.open("a") as fh:  # a line being written: not read until it is whole
        fh.write('{"event": "cell", "task": "a", "cell": 1, ')
    assert [e["event"] for e in tail.read(path)[0]] == ["task-started"]
    with path.open("a") as fh:
        fh.write('"cells": 2}\n')
    assert tail.read(path) == ([{"event": "cell", "task": "a", "cell": 1, "cells": 2}], False)
    assert tail.read(path) == ([], False)
    second = build_events.EventLog(tmp_path)
    second.start(force=False)
    events, restarted = tail.read(path)
    assert restarted and [e["force"] for e in events] == [False]


def test_replay_gives_each_task_of_the_build_its_state() -> None:
    view = replay([
        {"event": "build-started", "pid": 7, "origin": "jupyter", "force": False, "resume": True, "t": 1.0},
        {"event": "task-started", "task": "a"}, {"event": "cell", "task": "a", "cell": 2, "cells": 3},
        {"event": "task-finished", "task": "a", "status": "executed", "seconds": 0.5},
        {"event": "task-started", "task": "b"}, {"event": "cell", "task": "b", "cell": 1, "cells": 4},
        {"event": "task-started", "task": "c"},
        {"event": "task-finished", "task": "c", "status": "failed", "seconds": 0.1},
    ])
    assert (view.pid, view.origin, view.resume, view.finished) == (7, "jupyter", True, False)
    assert {n: t["state"] for n, t in view.tasks.items()} == {"a": UP_TO_DATE, "b": RUNNING, "c": FAILED}
    assert (view.tasks["b"]["cell"], view.tasks["b"]["cells"]) == (1, 4)
