"""Typed outcomes: a task's status in a build, the failing cell of a partial notebook (:func:`find_failure`),
and the failure manifest of a failed task (pure).

:class:`TaskStatus` is a ``str`` enum, so JSON files (``last_build.json``, ``tasks.json``, build events)
and MLflow tags (``mlnb.status`` on a task run) keep the very strings they always had.

The failure manifest (``.mlnb/snapshots/<task>/manifest.json``, written by :mod:`mlnb.services.debug`
when a task fails) is a :class:`FailureManifest`; :meth:`FailureManifest.from_json` refuses a file that
is not one with an :class:`~mlnb.errors.UserInputError` naming the file and the field.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from mlnb.core.notebooks import cell_source
from mlnb.errors import UserInputError


class TaskStatus(StrEnum):
    """What a build did with a task (see the life cycle in :mod:`mlnb.adapters.ploomber.pipeline`)."""

    EXECUTED = "executed"
    SKIPPED = "skipped"  # up to date
    FAILED = "failed"
    NOT_RUN = "not run"  # an upstream task failed first
    STOPPED = "stopped"  # DAGBuildEarlyStop (the task, its on_finish hook or the DAG's): a graceful stop

    @property
    def ran(self) -> bool:
        """The task's notebook ran in this build (to the end or to its failure)."""
        return self in (TaskStatus.EXECUTED, TaskStatus.FAILED)

    @property
    def current(self) -> bool:
        """The task's products are current after this build (it ran or was up to date)."""
        return self in (TaskStatus.EXECUTED, TaskStatus.SKIPPED)


@dataclass(frozen=True)
class FailedCell:
    index: int  # position in the source notebook (papermill's injected cell not counted)
    id: str
    first_line: str


@dataclass(frozen=True)
class CellError:
    ename: str
    evalue: str

    def describe(self) -> str:
        return f"{self.ename}: {self.evalue}" if self.evalue else self.ename


@dataclass(frozen=True)
class CheapCells:
    """No snapshot was taken: the cells before the failing one ran for less than ``threshold_s``."""

    seconds_before: float
    threshold_s: float


@dataclass(frozen=True)
class FailureManifest:
    """A failed task's record: the failing cell and error, and what a resume must find unchanged."""

    task: str
    build_run_id: str | None
    time: float
    cell: FailedCell | None  # None: the task failed before any cell ran
    error: CellError | None
    kernel_died: bool
    source: str  # the task notebook, relative to the project
    source_sha256: str
    cells: list[dict[str, str]]  # per source cell: id, type, sha256
    params: dict[str, Any] | None  # None: a resource file of the task could not be read
    upstream: dict[str, Any]  # upstream product -> content hash
    partial_notebook: str  # relative to the project
    snapshot: dict[str, Any] | None = None  # what the namespace snapshot holds (its snapshot.json)
    cheap: CheapCells | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)  # keys a newer mlnb wrote

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return {**data, **self.extra}

    def to_json(self) -> str:
        """The file's text (the layout mlnb always wrote: ``json.dump(..., indent=1)``)."""
        return json.dumps(self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Any, source: str = "manifest.json") -> FailureManifest:
        if not isinstance(data, dict):
            raise UserInputError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        try:
            cell, error, cheap = data.get("cell"), data.get("error"), data.get("cheap")
            return cls(
                task=_get(data, "task", str, source),
                build_run_id=_get(data, "build_run_id", str, source, optional=True),
                time=float(_get(data, "time", (int, float), source)),
                cell=None if cell is None else FailedCell(
                    _get(_obj(cell, "cell", source), "index", int, source, "cell."), str(cell.get("id", "")),
                    str(cell.get("first_line", ""))),
                error=None if error is None else CellError(str(_obj(error, "error", source).get("ename", "Error")),
                                                           str(error.get("evalue", ""))),
                kernel_died=bool(data.get("kernel_died", False)),
                source=_get(data, "source", str, source),
                source_sha256=str(data.get("source_sha256", "")),
                cells=_get(data, "cells", list, source),
                params=_get(data, "params", dict, source, optional=True),
                upstream=_get(data, "upstream", dict, source),
                partial_notebook=_get(data, "partial_notebook", str, source),
                snapshot=_get(data, "snapshot", dict, source, optional=True),
                cheap=None if cheap is None else CheapCells(
                    float(_get(_obj(cheap, "cheap", source), "seconds_before", (int, float), source, "cheap.")),
                    float(_get(cheap, "threshold_s", (int, float), source, "cheap."))),
                extra={k: v for k, v in data.items() if k not in known},
            )
        except KeyError as exc:
            raise UserInputError(f"{source}: {exc.args[0]}: missing") from None

    @classmethod
    def from_json(cls, text: str, source: str = "manifest.json") -> FailureManifest:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UserInputError(f"{source}: not JSON ({exc})") from None
        return cls.from_dict(data, source)

    @classmethod
    def read(cls, path: Path, source: str | None = None) -> FailureManifest:
        """The manifest in ``path`` (``OSError`` when it cannot be read; ``UserInputError`` when bad)."""
        return cls.from_json(path.read_text(encoding="utf-8"), source or str(path))


def _obj(value: Any, name: str, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UserInputError(f"{source}: {name}: expected an object, got {value!r}"[:300])
    return value


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...], source: str, prefix: str = "",
         optional: bool = False) -> Any:
    if key not in data:
        if optional:
            return None
        raise UserInputError(f"{source}: {prefix}{key}: missing")
    value = data[key]
    if value is None and optional:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):  # true is no number
        raise UserInputError(f"{source}: {prefix}{key}: unexpected value {value!r}"[:300])
    return value


@dataclass(frozen=True)
class CellFailure:
    cell_index: int  # position in the source notebook (0-based; papermill's injected cell not counted); -1: no cell
    cell_id: str
    ename: str
    evalue: str
    first_line: str

    def describe(self) -> str:
        if self.cell_index < 0:  # not a cell: the task's hook, its products, a function task
            return f"{self.ename}: {self.evalue}"
        return f"cell {self.cell_index} ({self.first_line[:50]!r}): {self.ename}: {self.evalue}"


def find_failure(nb: dict[str, Any]) -> CellFailure | None:
    """The failing cell of a partially executed notebook (error output, or where the kernel died)."""
    added = {"injected-parameters", "papermill-error-cell-tag"}  # cells papermill adds
    source_cells = [c for c in nb.get("cells", []) if not added & set(c.get("metadata", {}).get("tags") or [])]
    last_started = None
    for i, cell in enumerate(source_cells):
        pm = cell.get("metadata", {}).get("papermill", {})
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors or pm.get("exception") or pm.get("status") == "running":
            ename, evalue = (errors[0].get("ename", "Error"), errors[0].get("evalue", "")) if errors else (
                "DeadKernelError", "the kernel died while executing this cell")
            return _failure(i, cell, ename, evalue)
        if pm.get("start_time"):
            last_started = i
    if last_started is not None:  # papermill records no error when the kernel is killed mid-cell
        return _failure(last_started, source_cells[last_started], "DeadKernelError",
                        "the kernel died while executing this cell (no Python exception was raised)")
    return None


def _failure(index: int, cell: dict[str, Any], ename: str, evalue: str) -> CellFailure:
    first = next((ln for ln in cell_source(cell).splitlines() if ln.strip()), "")
    return CellFailure(index, str(cell.get("id", "")), ename, " ".join(str(evalue).split()), first.strip())
