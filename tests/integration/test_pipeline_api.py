"""The Pipeline panel's API in a real Jupyter server over a real project: states, builds started from the
API (the real `mlnb build`), pushed progress, one build at a time (API vs CLI), Stop."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import git_init, run_mlnb
from tests.integration.test_jupyter_api import Server
from tests.pipeline_fixtures import TASKS, set_env, write_pipeline

pytestmark = pytest.mark.integration

def make_slow_project(base: Path) -> Path:
    root = write_pipeline(base / "slow")
    (root / ".gitignore").write_text("products/\nmlflow.db\nmlruns/\n.mlnb/\n")
    git_init(root)
    return root


class Events:
    """The server-sent events of ``GET pipeline/events``, read in a thread."""

    def __init__(self, server: Server) -> None:
        req = urllib.request.Request(server.url + "/mlnb/api/pipeline/events",
                                     headers={"Authorization": f"token {server.token}"})
        self.response = urllib.request.urlopen(req, timeout=300)
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.queue: queue.Queue[dict] = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for raw in self.response:
                line = raw.decode().strip()
                if line.startswith("data: "):
                    self.queue.put(json.loads(line[6:]))
        except (OSError, ValueError, AttributeError):  # AttributeError: closed by close() meanwhile
            pass

    def until(self, done: Callable[[dict], bool], timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            event = self.queue.get(timeout=max(0.1, deadline - time.monotonic()))
            self.seen.append(event)
            if done(event):
                return event

    def close(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # unblocks the reading thread at once
            self.response.fp.raw._sock.shutdown(socket.SHUT_RDWR)
        self.response.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("pipeline-api")
    root = make_slow_project(tmp)
    server = Server(root, tmp)
    yield server
    server.stop()


@pytest.fixture
def events(served: Server) -> Iterator[Events]:
    stream = Events(served)
    try:
        yield stream
    finally:
        stream.close()


def states(snapshot: dict) -> dict[str, str]:
    return {t["name"]: t["state"] for t in snapshot["tasks"]}


def test_the_dag_and_why_each_task_is_outdated(served: Server) -> None:
    status, body = served.call("GET", "/mlnb/api/pipeline")
    assert status == 200, body
    assert [(t["name"], t["upstream"]) for t in body["tasks"]] == [("prep", []), ("fit", ["prep"]),
                                                                   ("report", ["fit"])]
    assert states(body) == dict.fromkeys(TASKS, "outdated")
    prep = body["tasks"][0]
    assert prep["source"] == "notebooks/prep.ipynb" and prep["executed"] is None  # not built yet
    assert prep["reasons"] == ["product missing: products/prep/prep.ipynb", "product missing: products/prep/out.txt"]
    assert body["build"]["running"] is False


def test_a_build_from_the_api_is_mlnb_build_and_its_progress_is_pushed(served: Server, events: Events) -> None:
    first = events.until(lambda e: True)
    assert first["event"] == "snapshot" and states(first) == dict.fromkeys(TASKS, "outdated")
    status, body = served.call("POST", "/mlnb/api/pipeline/build", {"mode": "build"})
    assert status == 202 and isinstance(body["pid"], int), body
    started = events.until(lambda e: e["event"] == "build-started")
    assert started["origin"] == "jupyter" and started["pid"] == body["pid"]
    finished = events.until(lambda e: e["event"] == "build-finished")
    assert finished["ok"] and finished["tasks"] == dict.fromkeys(TASKS, "executed"), finished
    after = events.until(lambda e: e["event"] == "snapshot")
    assert states(after) == dict.fromkeys(TASKS, "up to date") and after["build"]["running"] is False
    assert after["tasks"][1]["executed"] == "products/fit/fit.ipynb"
    kinds = [(e["event"], e.get("task")) for e in events.seen if e["event"] in ("task-started", "task-finished")]
    assert kinds == [(k, t) for t in TASKS for k in ("task-started", "task-finished")]
    cells = [(e["cell"], e["cells"]) for e in events.seen if e["event"] == "cell" and e["task"] == "fit"]
    assert cells == [(1, 3), (2, 3), (3, 3)]
    # the same build as on the command line: an MLflow build run, and the CLI agrees all is up to date
    assert finished["run_id"] and len(finished["run_id"]) == 32
    cli = run_mlnb(served.root, "status")
    assert cli.returncode == 0 and cli.stdout.count("up to date") == 3, cli.stdout + cli.stderr


def test_one_build_at_a_time_then_stop_interrupts_it(served: Server, events: Events) -> None:
    set_env(served.root, wait_for={"fit": served.root / "never"})  # fit runs until stopped
    try:
        events.until(lambda e: e["event"] == "snapshot")
        status, body = served.call("POST", "/mlnb/api/pipeline/build", {"mode": "force"})
        assert status == 202 and body["running"] is True, body  # answered once it holds the lock
        pid = body["pid"]
        events.until(lambda e: e["event"] == "cell" and e["task"] == "fit" and e["cell"] == 2)  # sleeping
        # a terminal build is refused while the panel's runs (exit 2, one line naming its pid) ...
        cli = run_mlnb(served.root, "build")
        assert cli.returncode == 2 and cli.stdout == "", cli.stdout + cli.stderr
        assert cli.stderr.strip().splitlines() == [
            f"mlnb: error: .mlnb/build.lock: a build is already running in this project (pid {pid}); "
            "wait for it to finish or stop it"]
        # ... and so is a second one from the API (409)
        status, body = served.call("POST", "/mlnb/api/pipeline/build", {"mode": "build"})
        assert status == 409 and f"pid {pid}" in body["error"], body
        status, snap = served.call("GET", "/mlnb/api/pipeline")
        assert snap["build"]["running"] and snap["build"]["pid"] == pid and states(snap)["fit"] == "running"
        assert snap["build"]["tasks"]["fit"]["cell"] == 2 and snap["build"]["tasks"]["fit"]["cells"] == 3

        status, body = served.call("POST", "/mlnb/api/pipeline/stop")
        assert status == 202 and body == {"pid": pid, "signal": "SIGINT"}
        finished = events.until(lambda e: e["event"] == "build-finished", timeout=60)
        assert finished["interrupted"] and not finished["ok"] and finished["tasks"]["fit"] == "failed"
        after = events.until(lambda e: e["event"] == "snapshot", timeout=60)
    finally:
        set_env(served.root)
    fit = next(t for t in after["tasks"] if t["name"] == "fit")
    assert fit["state"] == "failed" and fit["failure"]["cell"] == 1, fit  # the sleeping cell (0-based)
    assert fit["failure"]["error"] == "KeyboardInterrupt"
    assert fit["executed"] == "products/_failed/fit/fit.ipynb"
    assert "mlnb: interrupted (Ctrl-C)" in (served.root / ".mlnb/build/build.log").read_text()
    assert states(after)["report"] == "outdated" and after["build"]["running"] is False
    status, body = served.call("POST", "/mlnb/api/pipeline/stop")
    assert status == 409 and body == {"error": "no build is running in this project"}


def test_a_terminal_build_shows_in_the_stream(served: Server, events: Events) -> None:
    events.until(lambda e: e["event"] == "snapshot")
    cli = run_mlnb(served.root, "build")
    assert cli.returncode == 0, cli.stdout + cli.stderr
    started = events.until(lambda e: e["event"] == "build-started")
    assert started["origin"] == "terminal"
    events.until(lambda e: e["event"] == "task-finished" and e["task"] == "report")
    after = events.until(lambda e: e["event"] == "snapshot")
    assert states(after) == dict.fromkeys(TASKS, "up to date")


def descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (from /proc: this test's own process tree only)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def test_a_killed_build_is_reported_and_leaves_no_lock(served: Server, events: Events) -> None:
    set_env(served.root, wait_for={"prep": served.root / "never"})
    try:
        events.until(lambda e: e["event"] == "snapshot")
        status, body = served.call("POST", "/mlnb/api/pipeline/build", {"mode": "force"})
        assert status == 202, body
        events.until(lambda e: e["event"] == "cell" and e["task"] == "prep" and e["cell"] == 2)
        below = descendants(body["pid"])  # its fork server and the kernel running prep
        assert below
        os.kill(body["pid"], signal.SIGKILL)
        ended = events.until(lambda e: e["event"] == "build-ended", timeout=60)
        assert ended["pid"] == body["pid"] and "ended without reporting" in ended["error"]
        after = events.until(lambda e: e["event"] == "snapshot", timeout=60)
        assert after["build"]["running"] is False
        deadline = time.monotonic() + 30  # the fork server and its kernels follow their parent
        while below & descendants(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not below & descendants(os.getpid())
    finally:
        set_env(served.root)
    cli = run_mlnb(served.root, "build")  # no stale lock
    assert cli.returncode == 0, cli.stdout + cli.stderr


@pytest.mark.parametrize("method, path, body, status, error", [
    ("POST", "/mlnb/api/pipeline/build", {"mode": "<script>"}, 400, "field mode: '<script>' is not one of"),
    ("POST", "/mlnb/api/pipeline/build", {"mode": "build", "sneaky": 1}, 400, "only the field mode"),
    ("POST", "/mlnb/api/pipeline/build", b"{nope", 400, "request body: not valid JSON"),
    ("POST", "/mlnb/api/pipeline/build", b"x" * (65 * 1024), 413, "larger than 65536 bytes"),
], ids=["bad-mode", "unknown-field", "malformed", "too-large"])
def test_bad_build_requests_get_one_line(served: Server, method: str, path: str, body, status: int,
                                         error: str) -> None:
    got, reply = served.call(method, path, body)
    assert got == status and set(reply) == {"error"} and error in reply["error"], reply
    assert "sneaky" not in reply["error"] and "nope" not in reply["error"]


def test_unauthenticated_requests_are_refused(served: Server) -> None:
    for method, path in (("GET", "/mlnb/api/pipeline"), ("GET", "/mlnb/api/pipeline/events"),
                         ("POST", "/mlnb/api/pipeline/build"), ("POST", "/mlnb/api/pipeline/stop")):
        status, _ = served.call(method, path, {} if method == "POST" else None, token=False)
        assert status == 403, (method, path)
