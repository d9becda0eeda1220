"""Client side of the fork server: the server's handle, a provisioner and a kernel manager.

``engine_name="mlnb"`` (:mod:`mlnb.engine.papermill_engine`, a ``papermill.engine`` entry point) is
papermill's own nbclient engine with one change: its kernel manager asks the fork server for an initialised
kernel process instead of spawning ``python -m ipykernel_launcher``. Interrupts, kills,
restarts, timeouts, dead-kernel detection and the written notebook are jupyter_client's,
nbclient's and papermill's unchanged code. Without a running fork server (or for a kernel
spec that is not this interpreter's ipykernel) it is exactly the stock engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlnb.core import settings
from mlnb.engine.clients import ready_client_class
from mlnb.errors import MlnbError

SERVER_ENV = "MLNB_FORKSERVER"  # path of the running fork server's socket
_task = threading.local()  # per build thread: the options of the task it is running


@contextlib.contextmanager
def task_options(env: dict[str, str] | None = None, resume: dict[str, Any] | None = None) -> Iterator[None]:
    """For the notebook this thread runs next: extra kernel ``env`` (e.g. where to snapshot on
    failure) and ``resume`` = {"cell_id", "cell_index", "partial"} (skip the cells before ``cell_id``, or for a
    script, whose cells have no lasting ids, before source cell ``cell_index``, taking their outputs from the
    ``partial`` notebook: the kernel restores the namespace instead)."""
    previous = getattr(_task, "options", None)
    _task.options = {"env": dict(env or {}), "resume": resume}
    try:
        yield
    finally:
        _task.options = previous


def current_options() -> dict[str, Any]:
    """The options :func:`task_options` set for this thread's notebook (``env``, ``resume``)."""
    return getattr(_task, "options", None) or {"env": {}, "resume": None}


_cells = threading.local()  # per build thread: who to tell when the notebook it runs starts a cell


@contextlib.contextmanager
def cell_events(callback: Callable[[int, int], None]) -> Iterator[None]:
    """For the notebook this thread runs next: ``callback(k, n)`` as its k-th of n cells starts
    (papermill's injected parameters cell not counted, as in a failure's cell index)."""
    previous = getattr(_cells, "callback", None)
    _cells.callback = callback
    try:
        yield
    finally:
        _cells.callback = previous


def watch_cells(nb_man: Any) -> None:
    """Tell this thread's :func:`cell_events` callback as the notebook of ``nb_man`` starts each cell."""
    callback = getattr(_cells, "callback", None)
    if callback is None:
        return
    start = nb_man.cell_start

    def injected(c: Any) -> bool:
        return "injected-parameters" in (c.get("metadata", {}).get("tags") or [])

    def cell_start(cell: Any, cell_index: int | None = None, **kwargs: Any) -> Any:
        done = start(cell, cell_index, **kwargs)
        with contextlib.suppress(Exception):  # progress never breaks a task
            cells = nb_man.nb.cells
            if cell_index is not None and not injected(cell):
                before = sum(1 for c in cells[:cell_index] if injected(c))
                callback(cell_index - before + 1, sum(1 for c in cells if not injected(c)))
        return done

    nb_man.cell_start = cell_start


PID_ENV = "MLNB_FORKSERVER_PID"
LOG_ENV = "MLNB_FORKSERVER_LOG"  # keep the fork server's log (and its kernels' stderr) at this path


def _server_alive() -> bool:
    """The fork server this build started (``MLNB_FORKSERVER_PID``) still runs."""
    pid = settings.get(PID_ENV)
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's: not ours, but not gone either
        return True
    return True


def request(sock_path: str, data: dict[str, Any], timeout: float = 300.0) -> dict[str, Any]:
    """One request to the fork server (a claim may wait for a kernel to finish initialising)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(max(1.0, deadline - time.monotonic()))
                conn.connect(sock_path)
                conn.sendall(json.dumps(data).encode() + b"\n")
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
            return json.loads(buf) if buf else {"error": "the fork server closed the connection"}
        except (FileNotFoundError, ConnectionRefusedError):  # still importing: not listening yet
            if time.monotonic() > deadline or not _server_alive():
                return {"error": "the fork server is not running", "gone": True}
            time.sleep(0.02)
        except (OSError, ValueError) as exc:
            return {"error": f"the fork server did not answer: {exc}"}


class ForkServer:
    """The fork server process of one build (a context manager)."""

    def __init__(self, modules: list[str], pool_size: int, cwd: Path) -> None:
        self.modules, self.pool_size, self.cwd = modules, pool_size, cwd
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._saved_env: tuple[str | None, str | None] | None = None

    @property
    def socket_path(self) -> str:
        assert self.dir is not None
        return str(self.dir / "sock")

    def start(self) -> ForkServer:
        self.dir = Path(tempfile.mkdtemp(prefix="mlnb-fork-"))  # 0700: connection files hold keys
        log_path = (settings.get(LOG_ENV) or self.dir / "server.log")  # kernels' stderr too
        with open(log_path, "ab") as log:
            env = {k: v for k, v in os.environ.items() if k not in (SERVER_ENV, PID_ENV)}
            cmd = [sys.executable, *INTERPRETER_FLAGS, "-m", "mlnb.engine.forkserver", str(self.dir),
                   str(self.pool_size), *self.modules]
            self.proc = subprocess.Popen(
                cmd, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._saved_env = (os.environ.get(SERVER_ENV), os.environ.get(PID_ENV))  # raw, restored on stop
        os.environ[SERVER_ENV] = self.socket_path
        os.environ[PID_ENV] = str(self.proc.pid)
        return self

    def interrupt(self, hard: bool = False) -> None:
        """Interrupt every running kernel (a KeyboardInterrupt in its cell), or kill it (``hard``)."""
        if self.proc is not None and self.proc.poll() is None:
            request(self.socket_path, {"op": "interrupt", "hard": hard}, timeout=5)

    def log_tail(self, lines: int = 5) -> str:
        try:
            assert self.dir is not None
            text = (self.dir / "server.log").read_text(errors="replace").strip().splitlines()
        except (OSError, AssertionError):
            return ""
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        for key, value in zip((SERVER_ENV, PID_ENV), self._saved_env or (None, None), strict=True):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if self.proc is not None and self.proc.poll() is None:
            if "error" in request(self.socket_path, {"op": "shutdown"}, timeout=2):
                self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ForkServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ForeignProcess:
    """A ``Popen``-like view of a kernel process forked by the fork server (not our child)."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int, sock_path: str) -> None:
        self.pid, self.sock_path = pid, sock_path
        self.returncode: int | None = None

    def _zombie(self) -> bool:
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return False
        return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            os.kill(self.pid, 0)
            if not self._zombie():
                return None
        except ProcessLookupError:
            pass
        except PermissionError:
            return None
        answer = request(self.sock_path, {"op": "status", "pid": self.pid}, timeout=2)
        code = answer.get("returncode")
        if code is None and "error" not in answer:
            return None if not self._zombie() else -signal.SIGKILL  # not reaped yet
        self.returncode = int(code) if code is not None else -signal.SIGKILL
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            time.sleep(0.02)
        return code

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


INTERPRETER_FLAGS = ["-Xfrozen_modules=off"]  # what `ipykernel install` puts in kernel.json


def kernel_args(cmd: list[str]) -> list[str] | None:
    """The arguments after ``-f FILE`` when ``cmd`` is this interpreter's
    ``[-Xfrozen_modules=off] -m ipykernel_launcher -f FILE ...`` (what the fork server runs)."""
    if not cmd or os.path.abspath(cmd[0]) != os.path.abspath(sys.executable):
        return None
    rest = cmd[1:]
    while rest and rest[0] in INTERPRETER_FLAGS:
        rest = rest[1:]
    if rest[:3] != ["-m", "ipykernel_launcher", "-f"] or len(rest) < 4:
        return None
    return rest[4:]


def _provisioner_class() -> type:
    from jupyter_client.provisioning import LocalProvisioner

    class ForkProvisioner(LocalProvisioner):  # type: ignore[misc, valid-type]
        """LocalProvisioner whose ``launch_kernel`` claims a kernel from the fork server."""

        async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
            sock = settings.get(SERVER_ENV)
            args = kernel_args(cmd)
            if not sock or args is None:
                return await super().launch_kernel(cmd, **kwargs)
            env = {k: v for k, v in (kwargs.get("env") or os.environ).items() if k not in (SERVER_ENV, PID_ENV)}
            env.update(current_options()["env"])
            cwd = str(kwargs.get("cwd") or os.getcwd())
            claim = {"op": "claim", "cwd": cwd, "env": env, "args": args}
            reply = await asyncio.to_thread(request, sock, claim)
            if reply.get("gone"):  # the fork server died (or never started): a stock kernel instead
                return await super().launch_kernel(cmd, **kwargs)
            if "error" in reply:
                raise MlnbError(f"fork server: {reply['error']}")
            if self.ports_cached:  # LocalProvisioner reserved ports the pool kernel does not use
                from jupyter_client.provisioning.local_provisioner import LocalPortCache

                for key in ("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port"):
                    LocalPortCache.instance().return_port(self.connection_info[key])
                self.ports_cached = False
            self.process = ForeignProcess(int(reply["pid"]), sock)
            self.pid = self.pgid = int(reply["pid"])  # the kernel called setsid(): its own group
            self.cwd = cwd
            info = dict(reply["connection"])
            info["key"] = str(info.get("key", "")).encode()
            self.connection_info = info
            return info

        async def wait(self) -> int | None:
            """As LocalProvisioner's, polling every 10 ms instead of 100 ms (a task's shutdown)."""
            if not isinstance(self.process, ForeignProcess):
                return await super().wait()
            while (code := self.process.poll()) is None:
                await asyncio.sleep(0.01)
            self.process = None
            return code

    return ForkProvisioner


def kernel_manager_class() -> type:
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    provisioner = _provisioner_class()
    client = ready_client_class()

    class ForkKernelManager(AsyncKernelManager):  # type: ignore[misc, valid-type]
        @default("client_factory")
        def _client_factory_default(self) -> type:
            return client

        async def _async_pre_start_kernel(self, **kw: Any) -> Any:
            if self.provisioner is None:
                self.kernel_id = self.kernel_id or kw.pop("kernel_id", str(uuid.uuid4()))
                self.provisioner = provisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
            return await super()._async_pre_start_kernel(**kw)

        async def _async_finish_shutdown(self, waittime: float | None = None, pollinterval: float = 0.01,
                                         restart: bool = False) -> None:
            await super()._async_finish_shutdown(waittime, pollinterval, restart)  # 10 ms polls, not 100 ms

    return ForkKernelManager


ENGINE_NAME = "mlnb"  # papermill's engine_name: mlnb.engine.papermill_engine.ForkEngine (an entry point)
