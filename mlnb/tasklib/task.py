"""Helpers that task notebooks call, so notebooks stay short and readable.

``context(name, upstream, product)`` works in both modes:

* headless (``ploomber build`` / ``mlnb build``): Ploomber injects ``upstream`` as a
  dict of product paths and ``product`` as a dict; we just wrap them;
* interactive (JupyterLab, defaults of the ``parameters`` cell: ``product = None``):
  product and upstream paths are read from ``pipeline.yaml``, so running the cells
  of a task notebook by hand reads and writes the same files as the pipeline.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.core import settings
from mlnb.core.io import atomic_path, find_project_root, write_json
from mlnb.errors import GateFailed, UserInputError

__all__ = [
    "TaskContext",
    "context",
    "enforce_gate",
    "load_pickle",
    "read_frame",
    "read_raw_csv",
    "save_frame",
    "save_pickle",
    "write_json",
]


@dataclass(frozen=True)
class TaskContext:
    name: str
    root: Path
    product: dict[str, Path]
    upstream: dict[str, dict[str, Path]]

    @contextlib.contextmanager
    def mlflow_run(self, experiment: str) -> Iterator[Any]:
        """The MLflow run of this task (child of the build run under ``mlnb build``)."""
        from mlnb.adapters.mlflow.tracking import task_run

        with task_run(self.name, self.root, experiment) as run:
            yield run


def _as_paths(products: Any) -> dict[str, Path]:
    if isinstance(products, dict):
        return {str(k): Path(str(v)) for k, v in products.items()}
    return {"nb": Path(str(products))}


def context(name: str, upstream: Any, product: Any) -> TaskContext:
    """Build the task's context from Ploomber's injected values or, interactively, from the spec."""
    root = find_project_root(settings.get("MLNB_PROJECT_ROOT"))
    if product is not None:
        ups = {k: _as_paths(v) for k, v in (upstream or {}).items()}
        return TaskContext(name, root, _as_paths(product), ups)
    from mlnb.core.project import load_project

    spec = load_project(root).spec
    if name not in spec.tasks:
        raise UserInputError(f"pipeline.yaml: no task named {name!r}")
    task = spec.tasks[name]
    return TaskContext(name, root, dict(task.products), {u: dict(spec.tasks[u].products) for u in task.upstream})


def read_raw_csv(path: str | Path) -> Any:
    """Read a raw CSV; unreadable or empty files are one-line errors naming the file."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: raw data file not found (run `make data` or set the `source` param)")
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserInputError(f"{path}: cannot parse CSV: {str(exc).splitlines()[0]}") from None


def save_frame(df: Any, path: str | Path) -> None:
    """Write a DataFrame atomically (parquet, or CSV by suffix)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".csv":
            df.to_csv(tmp, index=False)
        else:
            df.to_parquet(tmp, index=False)


def read_frame(path: str | Path) -> Any:
    import pandas as pd

    path = Path(path)
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def save_pickle(obj: Any, path: str | Path) -> str:
    """Pickle ``obj`` atomically with joblib; return the file's sha256 (checked on load)."""
    import joblib

    with atomic_path(path) as tmp:
        joblib.dump(obj, tmp)
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    with atomic_path(Path(f"{path}.sha256")) as tmp:
        tmp.write_text(digest + "\n")
    return digest


def load_pickle(path: str | Path) -> Any:
    """Load a pickle written by :func:`save_pickle`, refusing one whose hash changed."""
    import joblib

    path = Path(path)
    expected = Path(f"{path}.sha256").read_text().strip()
    actual = hashlib.sha256(path.read_bytes()).hexdigest()
    if actual != expected:
        raise UserInputError(f"{path}: sha256 {actual[:12]} does not match the recorded {expected[:12]}; "
                             "refusing to unpickle a modified file")
    return joblib.load(path)


def enforce_gate(gate: dict[str, Any]) -> None:
    """Fail the task (and so the build) when the gate's verdict is ``failed``; a healthy build that
    is not promotable runs on (its verdict is recorded, `mlnb promote` refuses it)."""
    if gate.get("verdict", "promotable" if gate.get("passed") else "failed") == "failed":
        raise GateFailed(f"gate: failed: {gate.get('reason', '')}")
