"""A Ploomber executor that runs independent tasks at the same time, in threads.

Part of the Ploomber seam (only :mod:`mlnb.adapters.ploomber.pipeline` uses it). Each task's notebook runs in
its own kernel process (papermill), so a worker thread only waits on that kernel: threads are
enough, and unlike Ploomber's ``Parallel`` (a process pool polled in a busy loop) nothing is
pickled and no core is burnt on waiting.

Task life cycle here (compare Ploomber's ``Task._build``, whose steps this splits)::

    WaitingExecution --submit--> worker thread: task._run()  (papermill: the notebook runs)
        --ok--> main thread: task._post_run_actions() (on_finish, metadata) --> Executed
        --raise--> main thread: Errored, task._run_on_failure(); downstream -> Aborted

Every status change, hook and progress event happens on the main thread, in completion order,
so Ploomber's downstream bookkeeping never races and progress lines never interleave.

A task (its code or its ``on_finish`` hook) raising Ploomber's ``DAGBuildEarlyStop`` stops the build
gracefully, as Ploomber's own executors do: no new task starts, the running ones finish, and
``DAGBuildEarlyStop`` (not an error) is raised to the DAG, which ends the build without one.
:attr:`stopped` names the tasks that asked.

A task that talks to a database through a Ploomber client (SQLScript, SQLDump, a SQLite relation) runs
on the main thread, one at a time, as under Ploomber's serial executor: its connection is thread-bound.

Ctrl-C (SIGINT): no new task starts; ``interrupt(hard=False)`` interrupts the running kernels
(a ``KeyboardInterrupt`` in the running cell, as Jupyter's interrupt button), so those tasks fail
the usual way (papermill saves the partial notebook, the build quarantines it); a second Ctrl-C
calls ``interrupt(hard=True)``, which kills them. :attr:`interrupted` tells the caller.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from ploomber.constants import TaskStatus
from ploomber.exceptions import DAGBuildEarlyStop, DAGBuildError
from ploomber.executors.abc import Executor

from mlnb.core.build_events import Progress


class ThreadedExecutor(Executor):
    def __init__(self, jobs: int, progress: Progress | None = None,
                 interrupt: Callable[[bool], None] | None = None,
                 options: Callable[[str], AbstractContextManager[Any]] | None = None) -> None:
        self.options = options or (lambda name: nullcontext())
        self.jobs = max(1, jobs)
        self.progress = progress or (lambda *_: None)
        self.interrupt = interrupt or (lambda hard: None)
        self.errors: dict[str, BaseException] = {}
        self.interrupted = 0  # how many times Ctrl-C was pressed
        self.stopped: list[str] = []  # tasks that raised DAGBuildEarlyStop

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.interrupted += 1
        self.interrupt(self.interrupted > 1)

    def __call__(self, dag: Any, show_progress: bool = False) -> list[Any]:
        super().__call__(dag)
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._on_sigint) if main else None
        try:
            reports = self._run_all(dag)
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        if self.stopped and not self.errors and not self.interrupted:
            raise DAGBuildEarlyStop(f"stopped gracefully by task {', '.join(self.stopped)}")
        if self.errors or self.interrupted:
            self.errors.setdefault("build", KeyboardInterrupt("interrupted"))
            raise DAGBuildError("; ".join(f"{name}: {type(exc).__name__}: {exc}" for name, exc in self.errors.items()))
        return [r for r in reports if r is not None]

    def _run_all(self, dag: Any) -> list[Any]:
        running: dict[Future[Any], tuple[Any, float]] = {}
        reports: list[Any] = []
        with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="mlnb-task") as pool:
            while True:
                started = {task.name for task, _ in running.values()}
                for task in dag.values():  # topological order: upstream tasks are submitted first
                    if len(running) >= self.jobs or self.interrupted or self.stopped:
                        break
                    if task.exec_status == TaskStatus.WaitingExecution and task.name not in started:
                        self.progress("started", task.name, 0.0)
                        runner = self._run_inline if uses_client(task) else pool.submit
                        running[runner(self._run_task, task)] = (task, time.perf_counter())
                        started.add(task.name)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    task, t0 = running.pop(future)
                    reports.append(self._finish(task, future, time.perf_counter() - t0))
        return reports

    @staticmethod
    def _run_inline(fn: Callable[[Any], Any], task: Any) -> Future[Any]:
        """Run on this (the main) thread: a SQL task's client (a ``sqlite3`` connection) belongs to the thread
        that opened it, and Ploomber uses it again here (the product's metadata, closing it at the end)."""
        future: Future[Any] = Future()
        try:
            future.set_result(fn(task))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def _run_task(self, task: Any) -> Any:
        with self.options(task.name):  # e.g. the task's kernel env (in this worker thread only)
            return task._run()

    def _finish(self, task: Any, future: Future[Any], elapsed: float) -> Any:
        error = future.exception()
        report = None
        if error is None:
            try:
                report = future.result()
                task._post_run_actions()
            except Exception as exc:
                error = exc
            else:
                task.exec_status = TaskStatus.Executed
                self.progress("executed", task.name, elapsed)
                return report
        task.exec_status = TaskStatus.Errored  # as Ploomber marks a task that stopped the build
        if _early_stop(error):
            self.stopped.append(task.name)
            self.progress("stopped", task.name, elapsed)
            return None
        self.errors[task.name] = error
        try:
            task._run_on_failure()
        except Exception as exc:
            self.errors[task.name] = exc
        self.progress("failed", task.name, elapsed)
        return None


def uses_client(task: Any) -> bool:
    """The task or its product talks to a database through a Ploomber client (SQL tasks, SQL relations)."""
    product = task.product
    products = list(product.products.products.values()) if hasattr(product, "products") else [product]
    return getattr(task, "client", None) is not None or any(
        getattr(p, "client", None) is not None for p in products if type(p).__name__ != "File")


def _early_stop(error: BaseException | None) -> bool:
    """``error`` is (or was raised from) Ploomber's ``DAGBuildEarlyStop``."""
    while error is not None:
        if isinstance(error, DAGBuildEarlyStop):
            return True
        error = error.__cause__
    return False
