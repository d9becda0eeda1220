"""Client side of the fork server: the server's handle, a provisioner, and the papermill engine.

``engine_name="mlnb"`` (registered with papermill by :func:`register`) is papermill's own
nbclient engine with one change: its kernel manager asks the fork server for an initialised
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
import time
import uuid
from pathlib import Path
from typing import Any

from mlnb.errors import MlnbError

SERVER_ENV = "MLNB_FORKSERVER"  # path of the running fork server's socket


PID_ENV = "MLNB_FORKSERVER_PID"


def _server_alive() -> bool:
    try:
        os.kill(int(os.environ.get(PID_ENV, "0")), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return int(os.environ.get(PID_ENV, "0")) > 0


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
        with open(self.dir / "server.log", "wb") as log:
            env = {k: v for k, v in os.environ.items() if k not in (SERVER_ENV, PID_ENV)}
            cmd = [sys.executable, *INTERPRETER_FLAGS, "-m", "mlnb.engine.forkserver", str(self.dir),
                   str(self.pool_size), *self.modules]
            self.proc = subprocess.Popen(
                cmd, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        self._saved_env = (os.environ.get(SERVER_ENV), os.environ.get(PID_ENV))
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
            sock = os.environ.get(SERVER_ENV)
            args = kernel_args(cmd)
            if not sock or args is None:
                return await super().launch_kernel(cmd, **kwargs)
            env = {k: v for k, v in (kwargs.get("env") or os.environ).items() if k not in (SERVER_ENV, PID_ENV)}
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


def _client_class() -> type:
    from queue import Empty

    from jupyter_client.asynchronous import AsyncKernelClient

    class ReadyClient(AsyncKernelClient):  # type: ignore[misc, valid-type]
        """``wait_for_ready`` without jupyter_client's fixed sleeps (0.2 s to "check" IOPub, then
        0.2 s of silence to "flush" it, on every kernel start): ready is the shell reply to our
        ``kernel_info`` *and* IOPub's ``idle`` status for that same request, which proves the
        IOPub subscription is live. Leftover IOPub messages are drained without waiting (nbclient
        ignores messages whose parent is not the cell it is running anyway)."""

        async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (timeout if timeout is not None else float("inf"))
            reply_wait = 0.05
            while True:
                msg_id = self.kernel_info()
                reply = None
                try:
                    while reply is None:
                        msg = await self.shell_channel.get_msg(timeout=reply_wait)
                        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "kernel_info_reply":
                            reply = msg
                except Empty:
                    pass
                if reply is not None:
                    try:
                        while True:
                            msg = await self.iopub_channel.get_msg(timeout=0.1)
                            if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                                    and msg["content"].get("execution_state") == "idle"):
                                break
                    except Empty:  # IOPub not connected in time: ask again
                        continue
                    self._handle_kernel_info_reply(reply)
                    break
                reply_wait = min(1.0, reply_wait * 2)
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:.0f} seconds")
            while True:
                try:
                    await self.iopub_channel.get_msg(timeout=0)
                except Empty:
                    break

        wait_for_ready = _async_wait_for_ready  # AsyncKernelClient binds the name at class creation

    return ReadyClient


def kernel_manager_class() -> type:
    from jupyter_client.manager import AsyncKernelManager
    from traitlets import default

    provisioner = _provisioner_class()
    client = _client_class()

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


ENGINE_NAME = "mlnb"


def register() -> None:
    """Register the ``mlnb`` papermill engine (idempotent)."""
    from papermill.engines import NBClientEngine, papermill_engines

    if ENGINE_NAME in papermill_engines._engines:
        return
    manager = kernel_manager_class()

    class ForkEngine(NBClientEngine):  # type: ignore[misc, valid-type]
        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
            if os.environ.get(SERVER_ENV):
                kwargs.setdefault("kernel_manager_class", manager)
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    papermill_engines.register(ENGINE_NAME, ForkEngine)
