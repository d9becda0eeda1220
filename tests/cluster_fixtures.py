"""A real Dask cluster for the tests: one ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, each
worker in its own empty directory (never the project's), one thread each, as the README tells users to start
them; and a real ``mlflow server``. Only processes the fixture started are looked at or killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.serving_fixtures import free_port, start_mlflow_server, stop, wait_ready

DASK = str(Path(sys.executable).with_name("dask"))


@dataclass
class Cluster:
    scheduler: str
    tracking: str
    base: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)  # name -> `dask worker` process

    def add_worker(self, name: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        home = self.base / name
        home.mkdir()
        log = open(home.with_suffix(".log"), "wb")
        proc = subprocess.Popen([DASK, "worker", self.scheduler, "--nthreads", "1", "--name", name,
                                 "--local-directory", str(home), "--no-dashboard"],
                                cwd=home, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.workers[name] = proc
        return proc

    def wait_for(self, n: int, timeout: float = 60) -> None:
        """The scheduler answers and has ``n`` workers (or more)."""
        from distributed import Client

        with Client(self.scheduler, timeout=timeout) as client:
            if n:
                client.wait_for_workers(n, timeout=timeout)

    def worker_owning(self, pid: int) -> str | None:
        """The name of the worker whose process tree holds ``pid``."""
        for name, proc in self.workers.items():
            try:
                tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            if any(p.pid == pid for p in tree):
                return name
        return None

    def pids(self, name: str) -> set[int]:
        proc = psutil.Process(self.workers[name].pid)
        return {proc.pid, *(p.pid for p in proc.children(recursive=True))}

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and everything it started (a machine lost mid-task)."""
        root = psutil.Process(self.workers[name].pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                proc.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        self.workers[name].wait(10)

    def close(self) -> None:
        for proc in [*self.workers.values(), *self.procs]:
            stop(proc)


def start_cluster(base: Path, workers: int = 2, tracking: bool = True) -> Cluster:
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    sched_log = open(base / "scheduler.log", "wb")
    scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 cwd=base, stdout=sched_log, stderr=subprocess.STDOUT, start_new_session=True)
    url = ""
    procs = [scheduler]
    if tracking:
        server_dir = base / "mlflow"
        server_dir.mkdir()
        mlflow_port = free_port()
        procs.append(start_mlflow_server(server_dir, mlflow_port))
        url = f"http://127.0.0.1:{mlflow_port}"
    cluster = Cluster(f"tcp://127.0.0.1:{port}", url, base, procs)
    for i in range(workers):
        cluster.add_worker(f"w{i + 1}")
    deadline = time.monotonic() + 60
    while scheduler.poll() is None and time.monotonic() < deadline:
        try:
            cluster.wait_for(workers, timeout=30)
            break
        except OSError:
            time.sleep(0.5)
    if url:
        wait_ready(url, procs[1], timeout=120, path="/health")
    return cluster
