"""Is every task up to date? Decided from Ploomber's own metadata files, without importing Ploomber.

``import ploomber`` costs seconds (nbformat's jsonschema, jupyter_client, ...); a no-op build
should not. This module re-implements exactly the part of Ploomber 0.23's outdated check
(``Product._check_is_outdated``) that the example and ordinary projects exercise, and answers
only "provably up to date" or "not proven". For a :class:`MetaProduct` (several files) a task is
up to date when:

* every product exists, and each has a ``.<name>.metadata`` JSON file with a timestamp;
* they all store the same ``stored_source_code``, equal to the notebook's cell sources
  joined by newlines (cells tagged ``injected-parameters``/``debugging-settings`` left out),
  which is ``str(NotebookSource)``;
* the first product's stored ``params`` equal the task's params from ``pipeline.yaml`` with
  each ``resources_`` file replaced by the MD5 of its content (``process_resources``);
* no upstream product is newer (by Ploomber's timestamp: the minimum over the products) and
  every upstream task is up to date.

Anything else (a missing or unreadable file, a normalisation Ploomber might apply) is "not
proven": the caller then asks Ploomber, so this can make a build faster but never skip a task
Ploomber would run. ``tests/integration/test_fast_builds.py`` checks that both agree.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from mlnb.core.notebooks import cell_source, read_notebook
from mlnb.core.spec import PipelineSpec, TaskSpec

_SKIPPED_TAGS = {"injected-parameters", "debugging-settings"}


def source_code(notebook: Path) -> str:
    """What Ploomber stores as ``stored_source_code`` for a notebook task."""
    cells = read_notebook(notebook).get("cells", [])
    return "\n".join(cell_source(c) for c in cells
                     if not _SKIPPED_TAGS & set((c.get("metadata") or {}).get("tags") or []))


def metadata_path(product: Path) -> Path:
    """Where Ploomber keeps a File product's metadata."""
    return product.with_name(f".{product.name}.metadata")


def read_metadata(product: Path) -> dict[str, Any] | None:
    """A product's Ploomber metadata, when readable and timestamped."""
    try:
        data = json.loads(metadata_path(product).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("timestamp"), int | float) else None


def params_for(task: TaskSpec, root: Path) -> dict[str, Any] | None:
    """The task's params as Ploomber stores them (``resources_`` files by MD5); None if a file is unreadable."""
    params = json.loads(json.dumps(task.params))  # a deep copy, JSON-typed as Ploomber serialises it
    resources = params.get("resources_")
    if resources is None:
        return params
    if not isinstance(resources, dict):
        return None
    for key, value in resources.items():
        path = root / str(value)
        try:
            resources[key] = hashlib.md5(path.read_bytes()).hexdigest()
        except OSError:
            return None
    return params


def task_timestamp(task: TaskSpec, root: Path, code: str | None = None) -> float | None:
    """The task's Ploomber timestamp when its own products are current (ignoring upstream), else None."""
    metas = []
    for product in task.products.values():
        if not product.exists():
            return None
        meta = read_metadata(product)
        if meta is None:
            return None
        metas.append(meta)
    code = source_code(task.source) if code is None else code
    if any(m.get("stored_source_code") != code for m in metas):
        return None
    stored = metas[0].get("params")
    if stored is None or stored != params_for(task, root):
        return None
    return min(float(m["timestamp"]) for m in metas)


def up_to_date(spec: PipelineSpec) -> dict[str, bool]:
    """Per task: True when provably up to date (False means "ask Ploomber", not "outdated")."""
    stamps: dict[str, float | None] = {}
    out: dict[str, bool] = {}
    for name, task in spec.tasks.items():  # topological order
        try:
            stamp = task_timestamp(task, spec.root)
        except Exception:
            stamp = None
        ok = stamp is not None and all(
            out.get(up) and stamps.get(up) is not None and stamps[up] <= stamp  # type: ignore[operator]
            for up in task.upstream)
        stamps[name] = stamp
        out[name] = bool(ok)
    return out


def all_up_to_date(spec: PipelineSpec) -> bool:
    return all(up_to_date(spec).values())
