"""The fork server: one warm process that forks an isolated kernel process per task.

Run as ``python -m mlnb.engine.forkserver SOCKET_DIR POOL_SIZE [MODULE ...]`` by
:class:`mlnb.engine.kernel.ForkServer`. Life cycle of a kernel process::

    forked --(ipykernel initialised, connection file written)--> ready (in the pool)
    ready --(claim: cwd, env, argv from the provisioner)--> running: chdir, environ
        replaced, RNGs reseeded, then the kernel's event loop starts
    ready/running --(shutdown, parent gone, SIGTERM)--> killed (whole process group)

Every kernel is a fresh ``fork()`` of this process, so a task's globals, monkey-patches and
working directory die with its process and never reach the next task. This process never
runs user code, never starts a thread and never calls into OpenMP/BLAS (a forked child of a
process that ran scikit-learn can hang), it only imports. A claim forks the replacement at
once, so the next kernel initialises while the current task runs.

Protocol: one JSON line per connection on ``SOCKET_DIR/sock``, one JSON line back:
``{"op": "claim", "cwd", "env", "args"}`` -> ``{"pid", "connection"}``;
``{"op": "status", "pid"}`` -> ``{"returncode"}`` (null while alive);
``{"op": "interrupt", "hard"}`` -> SIGINT (SIGKILL when hard) to every running kernel;
``{"op": "shutdown"}`` -> ``{"ok": true}``, then every kernel is killed and this exits.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import selectors
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from mlnb.core import settings

POOL_ARGS = ["--HistoryManager.hist_file=:memory:"]  # what nbclient passes every kernel it starts
_INIT_FAILURES_MAX = 3


def _set_pdeathsig() -> None:
    """Die with the parent (Linux): a kernel never outlives its fork server."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _kernel_child(conn_file: str, args: list[str], ready_w: int, claim_r: int, start_dir: str) -> None:
    """In the forked child: initialise ipykernel, report ready, wait for the claim, run."""
    os.setsid()  # as jupyter_client's launcher does (start_new_session): own process group
    _set_pdeathsig()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.close(devnull)
    from ipykernel.kernelapp import IPKernelApp

    before = dict(os.environ)
    app = IPKernelApp.instance()
    app.initialize(["-f", conn_file, *args])
    added = {k: v for k, v in os.environ.items() if before.get(k) != v}  # what ipykernel set itself
    os.write(ready_w, b"1")
    os.close(ready_w)
    claim = json.loads(_read_all(claim_r) or b"null")
    os.close(claim_r)
    if claim is None:  # the server went away before claiming us
        os._exit(0)
    env = dict(claim["env"])
    for key, value in added.items():
        env.setdefault(key, value)
    os.environ.clear()
    os.environ.update(env)
    cwd = claim["cwd"]
    os.chdir(cwd)
    if sys.path and sys.path[0] == start_dir:  # `python -m` put the server's start dir first
        sys.path[0] = cwd
    launcher = importlib.util.find_spec("ipykernel_launcher")
    sys.argv = [launcher.origin if launcher and launcher.origin else "ipykernel_launcher", "-f", conn_file, *args]
    _reseed()
    shell = getattr(app, "shell", None)
    if shell is not None and isinstance(shell.user_ns.get("_dh"), list):
        shell.user_ns["_dh"][:] = [cwd]
    if shell is not None and (settings.get("MLNB_SNAPSHOT_DIR") or settings.get("MLNB_RESUME_FROM")):
        from mlnb.engine import checkpoint

        checkpoint.install(shell)  # failure snapshots / a resumed task's restored namespace
    app.start()
    os._exit(0)


def _reseed() -> None:
    """Forked children share the server's RNG state: give each kernel its own, as a fresh one has."""
    import random

    random.seed()
    np = sys.modules.get("numpy")
    if np is not None:
        np.random.seed()


class Server:
    def __init__(self, sock_dir: Path, pool_size: int, parent: int) -> None:
        self.sock_dir = sock_dir
        self.pool_size = max(1, pool_size)
        self.start_dir = os.getcwd()
        self.parent = parent  # the build, as it was when this process started
        self.sel = selectors.DefaultSelector()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(sock_dir / "sock"))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, ("accept", None))
        self.starting: dict[int, dict[str, Any]] = {}  # pid -> kernel being initialised
        self.ready: list[dict[str, Any]] = []
        self.running: set[int] = set()
        self.exited: dict[int, int] = {}
        self.waiting: list[tuple[socket.socket, dict[str, Any]]] = []  # claims with no kernel ready yet
        self.failures = 0
        self.seq = 0
        self.stopping = False

    # -- kernels -------------------------------------------------------------------------
    def spawn(self, args: list[str]) -> None:
        self.seq += 1
        conn_file = str(self.sock_dir / f"kernel-{self.seq}.json")
        ready_r, ready_w = os.pipe()
        claim_r, claim_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(ready_r)
                os.close(claim_w)
                self.listener.close()
                for kernel in [*self.starting.values(), *self.ready]:
                    for fd in (kernel["ready_r"], kernel["claim_w"]):
                        with contextlib.suppress(OSError):
                            os.close(fd)
                for conn, _ in self.waiting:
                    conn.close()
                _kernel_child(conn_file, args, ready_w, claim_r, self.start_dir)
            except BaseException:
                import traceback

                traceback.print_exc(file=sys.__stderr__)
                with contextlib.suppress(Exception):
                    sys.__stderr__.flush()
            finally:
                os._exit(70)
        os.close(ready_w)
        os.close(claim_r)
        kernel = {"pid": pid, "conn_file": conn_file, "args": args, "ready_r": ready_r, "claim_w": claim_w}
        self.starting[pid] = kernel
        self.sel.register(ready_r, selectors.EVENT_READ, ("ready", pid))

    def on_ready(self, pid: int) -> None:
        kernel = self.starting.pop(pid, None)
        if kernel is None:  # already reaped
            return
        self.sel.unregister(kernel["ready_r"])
        ok = os.read(kernel["ready_r"], 1) == b"1"
        os.close(kernel["ready_r"])
        if not ok:  # died while initialising: reaped below; the claim waits for a replacement
            self.init_failed(kernel)
            return
        self.failures = 0
        self.ready.append(kernel)
        self.serve_waiting()

    def init_failed(self, kernel: dict[str, Any]) -> None:
        """A kernel died before it was ready: try another, up to a limit, then fail the claims."""
        os.close(kernel["claim_w"])
        self.failures += 1
        if self.failures < _INIT_FAILURES_MAX:
            self.spawn(kernel["args"])
        else:
            self.fail_waiting("kernels die while starting (see the fork server log)")

    def claim(self, conn: socket.socket, request: dict[str, Any]) -> None:
        args = list(request.get("args") or POOL_ARGS)
        kernel = next((k for k in self.ready if k["args"] == args), None)
        if kernel is None:
            self.waiting.append((conn, request))
            if not any(k["args"] == args for k in self.starting.values()):
                self.spawn(args)
            return
        self.ready.remove(kernel)
        try:
            info = json.loads(Path(kernel["conn_file"]).read_text())
            payload = json.dumps({"cwd": request["cwd"], "env": request["env"]})
            os.write(kernel["claim_w"], payload.encode())  # may block while the child reads: it is reading
        except OSError as exc:
            self.reply(conn, {"error": f"kernel {kernel['pid']} could not be claimed: {exc}"})
            return
        finally:
            os.close(kernel["claim_w"])
        self.running.add(kernel["pid"])
        self.reply(conn, {"pid": kernel["pid"], "connection": info})
        if args == POOL_ARGS and len(self.ready) + len(self.starting) < self.pool_size:
            self.spawn(args)  # warm the next one while this task runs

    def serve_waiting(self) -> None:
        waiting, self.waiting = self.waiting, []
        for conn, request in waiting:
            self.claim(conn, request)

    def fail_waiting(self, message: str) -> None:
        for conn, _ in self.waiting:
            self.reply(conn, {"error": message})
        self.waiting = []

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.exited[pid] = os.waitstatus_to_exitcode(status)
            self.running.discard(pid)
            if pid in self.starting:
                kernel = self.starting[pid]
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(kernel["ready_r"])
                os.close(kernel["ready_r"])
                self.starting.pop(pid)
                self.init_failed(kernel)
            for kernel in list(self.ready):
                if kernel["pid"] == pid:
                    self.ready.remove(kernel)
                    os.close(kernel["claim_w"])

    def kill_all(self) -> None:
        pids = [*self.starting, *(k["pid"] for k in self.ready), *self.running]
        for pid in pids:
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(OSError):
                    kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while pids and time.monotonic() < deadline:
            self.reap()
            pids = [p for p in pids if p not in self.exited]
            time.sleep(0.01)

    # -- requests ------------------------------------------------------------------------
    def reply(self, conn: socket.socket, data: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            conn.setblocking(True)
            conn.sendall(json.dumps(data).encode() + b"\n")
        conn.close()

    def handle(self, conn: socket.socket) -> None:
        conn.setblocking(True)
        conn.settimeout(5)
        buf = b""
        try:
            while not buf.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buf += chunk
            request = json.loads(buf)
        except (OSError, ValueError):
            conn.close()
            return
        op = request.get("op")
        if op == "claim":
            self.claim(conn, request)
        elif op == "status":
            pid = int(request.get("pid", -1))
            self.reap()
            self.reply(conn, {"returncode": self.exited.get(pid)})
        elif op == "interrupt":  # Ctrl-C in the build: interrupt (or kill) every running kernel
            sig = signal.SIGKILL if request.get("hard") else signal.SIGINT
            for pid in list(self.running):
                with contextlib.suppress(OSError):
                    os.killpg(pid, sig)  # as jupyter_client signals a kernel: its process group
            self.reply(conn, {"ok": True, "signalled": len(self.running)})
        elif op == "shutdown":
            self.reply(conn, {"ok": True})
            self.stopping = True
        else:
            self.reply(conn, {"error": f"unknown op {op!r}"})

    def run(self) -> None:
        for _ in range(self.pool_size):
            self.spawn(POOL_ARGS)
        (self.sock_dir / "ready").write_text(str(os.getpid()))
        while not self.stopping:
            for key, _ in self.sel.select(timeout=0.05):
                kind, pid = key.data
                if kind == "accept":
                    with contextlib.suppress(BlockingIOError):
                        conn, _addr = self.listener.accept()
                        self.handle(conn)
                elif kind == "ready":
                    self.on_ready(pid)
            self.reap()
            if os.getppid() != self.parent:  # the build died without shutting us down
                self.stopping = True
        self.kill_all()
        self.fail_waiting("the fork server is shutting down")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # skip finalising pandas/sklearn/mlflow: nothing here needs cleaning up


def warm(modules: list[str]) -> list[str]:
    """Import ``modules`` (best effort); the names that failed to import."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException:
            failed.append(name)
    return failed


def main(argv: list[str]) -> None:
    sock_dir, pool_size, modules = Path(argv[0]), int(argv[1]), argv[2:]
    parent = os.getppid()  # first thing: a build killed while we import must still be noticed
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the build's to handle; it shuts us down
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    import ipykernel.kernelapp  # noqa: F401 - the kernel itself: the bulk of a kernel's start-up

    failed = warm(modules)
    import threading

    if threading.active_count() > 1:  # forking a threaded process is unsafe: warn loudly
        print(f"fork server: pre-imports started {threading.active_count() - 1} thread(s)", file=sys.stderr)
    if failed:
        print(f"fork server: not pre-imported (a task imports them itself): {', '.join(failed)}", file=sys.stderr)
    server = Server(sock_dir, pool_size, parent)
    signal.signal(signal.SIGTERM, lambda *_: setattr(server, "stopping", True))
    if stopping or parent == 1 or os.getppid() != parent:  # stopped, or the build died while we imported
        server.stopping = True
    server.run()


if __name__ == "__main__":
    main(sys.argv[1:])
