"""Why a task is outdated, change by change, and accepting a cosmetic edit (pure logic).

The evidence, all of it already on disk after a build:

* Ploomber's ``.metadata`` files: the source and params the products were made with, and when;
* the executed notebook (``products/<task>/<task>.ipynb``): the cells that ran, one by one, so a
  changed cell is named by its index and shown as a short diff; and, in ``metadata.mlnb.upstream``
  (written by ``mlnb build``), the SHA-256 of every upstream product the task read, so an
  upstream that re-ran is told apart from one whose content really changed.

A source change is *cosmetic* when every changed cell is markdown, or a code cell whose syntax
tree is unchanged (comments, blank lines, spacing, line breaks inside brackets): it cannot change
what the task computes. ``accept`` then records the current source in Ploomber's metadata, so
``mlnb status``, ``ploomber status`` and ``ploomber build`` all see the task as up to date without
re-running it.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlnb.adapters.ploomber import uptodate
from mlnb.core import sources
from mlnb.core.io import atomic_write
from mlnb.core.notebooks import cell_source, read_notebook, read_source_notebook
from mlnb.core.spec import PipelineSpec, TaskSpec
from mlnb.errors import UserInputError

if TYPE_CHECKING:
    from mlnb.adapters.ploomber.pipeline import TaskState

_ADDED_TAGS = {"injected-parameters", "debugging-settings", "papermill-error-cell-tag"}
_MAGIC = re.compile(r"^\s*[%!]")


@dataclass(frozen=True)
class Change:
    kind: str  # product | record | cell | source | param | upstream | module
    summary: str
    diff: str = ""
    cosmetic: bool = False


@dataclass(frozen=True)
class Explanation:
    task: str
    outdated: bool
    changes: tuple[Change, ...]

    @property
    def cosmetic_only(self) -> bool:
        return self.outdated and bool(self.changes) and all(c.cosmetic for c in self.changes)


def content_hash(path: Path) -> str | None:
    """SHA-256 of a file, or of a directory's files (relative names and contents), or None."""
    if path.is_file():
        return _file_sha256(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(item.relative_to(path).as_posix().encode() + b"\0" + _file_sha256(item).encode())
        return digest.hexdigest()
    return None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def product_hashes(spec: PipelineSpec, name: str) -> dict[str, str | None]:
    """Content hashes of task ``name``'s products (its executed notebook left out)."""
    return {key: content_hash(path) for key, path in spec.tasks[name].products.items() if key != "nb"}


def upstream_hashes(spec: PipelineSpec, task: TaskSpec,
                    cache: dict[str, dict[str, str | None]] | None = None) -> dict[str, dict[str, str | None]]:
    """What ``mlnb build`` records in an executed notebook: the upstream products' content hashes
    (``cache``, shared across one build's tasks, hashes each product once)."""
    cache = {} if cache is None else cache
    for up in task.upstream:
        if up not in cache:
            cache[up] = product_hashes(spec, up)
    return {up: cache[up] for up in task.upstream}


def _ran_cells(task: TaskSpec) -> list[dict[str, Any]] | None:
    try:
        nb = read_notebook(task.notebook_product)
    except Exception:
        return None
    return [c for c in nb.get("cells", []) if not _ADDED_TAGS & set((c.get("metadata") or {}).get("tags") or [])]


def _code_tree(source: str) -> str | None:
    code = "\n".join("" if _MAGIC.match(line) else line for line in source.splitlines())
    magics = [line.strip() for line in source.splitlines() if _MAGIC.match(line)]
    try:
        return ast.dump(ast.parse(code)) + json.dumps(magics)
    except SyntaxError:
        return None


def _cosmetic(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    if old is None or new is None:  # a cell added or removed: cosmetic only if it is markdown
        cell = old or new or {}
        return cell.get("cell_type") == "markdown"
    if old.get("cell_type") != new.get("cell_type"):
        return False
    if new.get("cell_type") != "code":
        return True
    a, b = _code_tree(cell_source(old)), _code_tree(cell_source(new))
    return a is not None and a == b


def _short_diff(old: str, new: str, context: int = 1, limit: int = 12) -> str:
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), "before", "after", lineterm="", n=context))
    return "\n".join(lines[2:limit + 2] + (["..."] if len(lines) > limit + 2 else []))


def cell_changes(old_cells: list[dict[str, Any]], new_cells: list[dict[str, Any]]) -> list[Change]:
    """Per changed cell: its index in the current notebook, a short diff, and whether it is cosmetic."""
    changes = []
    matcher = difflib.SequenceMatcher(a=[cell_source(c) for c in old_cells], b=[cell_source(c) for c in new_cells],
                                      autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        olds, news = old_cells[i1:i2], new_cells[j1:j2]
        for k in range(max(len(olds), len(news))):
            old = olds[k] if k < len(olds) else None
            new = news[k] if k < len(news) else None
            where = f"cell {j1 + k}" if new is not None else f"a cell after cell {j1 - 1}" if j1 else "the first cell"
            verb = "changed" if old is not None and new is not None else "added" if new is not None else "removed"
            kind = (new or old or {}).get("cell_type", "code")
            cosmetic = _cosmetic(old, new)
            note = " (cosmetic: markdown, comments or formatting only)" if cosmetic else ""
            changes.append(Change("cell", f"{where} ({kind}) {verb}{note}",
                                  _short_diff(cell_source(old) if old else "", cell_source(new) if new else ""),
                                  cosmetic))
    return changes


def _stored(task: TaskSpec) -> list[dict[str, Any]] | None:
    metas = [uptodate.read_metadata(p) for p in task.products.values()]
    return None if any(m is None for m in metas) else metas  # type: ignore[return-value]


def _source_code(task: TaskSpec) -> str:
    """The task's code as Ploomber records it: a notebook's cells (:func:`uptodate.source_code`), a
    jupytext script's cells, joined by newlines."""
    if task.kind == sources.SCRIPT:
        return "\n".join(cell_source(c) for c in read_source_notebook(task.source).get("cells", []))
    return uptodate.source_code(task.source)


def explain_task(spec: PipelineSpec, task: TaskSpec, outdated: dict[str, bool],
                 reasons: Sequence[str] = ()) -> Explanation:
    """Why ``task`` is outdated (``reasons``: Ploomber's, when it was asked)."""
    if outdated.get(task.name) is False:
        return Explanation(task.name, False, ())
    if task.kind not in (sources.NOTEBOOK, sources.SCRIPT):  # no cells to diff: Ploomber's reasons, if it was asked
        said = tuple(Change("record", r) for r in reasons)
        return Explanation(task.name, True, said or (Change("record", f"{task.what} ({task.source.name}): --explain "
                                                                      "details notebook and script tasks only; "
                                                                      "`mlnb status` gives Ploomber's verdict and "
                                                                      "reasons"),))
    missing = [p for p in task.products.values() if not p.exists()]
    if missing:
        return Explanation(task.name, True, tuple(
            Change("product", f"product missing: {p.relative_to(spec.root)}") for p in missing))
    metas = _stored(task)
    if metas is None:
        return Explanation(task.name, True, (Change("record", "no record of a successful run (Ploomber metadata)"),))
    changes: list[Change] = []
    stored_code = metas[0].get("stored_source_code")
    current_code = _source_code(task)
    if stored_code != current_code:
        ran = _ran_cells(task)
        new_cells = read_source_notebook(task.source).get("cells", [])
        if ran is not None and "\n".join(cell_source(c) for c in ran) == stored_code:
            changes += cell_changes(ran, new_cells)
        else:  # the executed notebook does not show what ran: a plain diff of the recorded source
            changes.append(Change("source", f"source changed: {task.source.relative_to(spec.root)}",
                                  _short_diff(str(stored_code or ""), current_code)))
    stored_params = metas[0].get("params") or {}
    current = uptodate.params_for(task, spec.root) or {}
    for key in sorted(set(stored_params) | set(current)):
        if stored_params.get(key) != current.get(key):
            if key == "resources_":
                for name in sorted(set(stored_params.get(key) or {}) | set(current.get(key) or {})):
                    if (stored_params.get(key) or {}).get(name) != (current.get(key) or {}).get(name):
                        changes.append(Change("param", f"resource {name}: {task.params['resources_'][name]} "
                                                       f"changed (md5, as Ploomber compares it)"))
            else:
                changes.append(Change("param", f"param {key}: {stored_params.get(key)!r} -> {current.get(key)!r}"))
    changes += _upstream_changes(spec, task, metas, outdated)
    if not changes:
        changes.append(Change("record", "Ploomber's own check differs from mlnb's (run `mlnb status`)"))
    return Explanation(task.name, True, tuple(changes))


def _upstream_changes(spec: PipelineSpec, task: TaskSpec, metas: list[dict[str, Any]],
                      outdated: dict[str, bool]) -> list[Change]:
    stamp = min(float(m["timestamp"]) for m in metas)
    try:
        recorded = read_notebook(task.notebook_product).get("metadata", {}).get("mlnb", {}).get("upstream") or {}
    except Exception:
        recorded = {}
    changes = []
    for up in task.upstream:
        if outdated.get(up):
            changes.append(Change("upstream", f"upstream {up} is outdated"))
            continue
        up_metas = _stored(spec.tasks[up])
        if up_metas is None or min(float(m["timestamp"]) for m in up_metas) <= stamp:
            continue
        before = recorded.get(up)
        now = product_hashes(spec, up)
        if not before:
            changes.append(Change("upstream", f"upstream {up} ran after this task (no content hashes recorded)"))
            continue
        differ = [k for k in now if before.get(k) != now[k]]
        if differ:
            for key in differ:
                old, new = (before.get(key) or "none")[:8], (now[key] or "missing")[:8]
                rel = spec.tasks[up].products[key].relative_to(spec.root)
                changes.append(Change("upstream", f"upstream {up}: {rel} changed (sha256 {old} -> {new})"))
        else:
            changes.append(Change("upstream", f"upstream {up} ran again but its products are identical "
                                              "(only Ploomber's timestamp is newer)"))
    return changes


def explain(spec: PipelineSpec, only: str | None = None,
            verdict: Callable[[], Sequence[TaskState]] | None = None) -> list[Explanation]:
    """Explanations for every task (or just ``only``), in pipeline order. mlnb's fast check proves only "up
    to date"; for the rest, ``verdict`` (Ploomber's view, as ``mlnb status`` gives it) decides, when given:
    a task mlnb cannot analyse (a function, a SQL script) is then outdated exactly when Ploomber says so."""
    if only is not None and only not in spec.tasks:
        raise UserInputError(f"pipeline.yaml: no task named {only!r} (tasks: {', '.join(spec.tasks)})")
    from mlnb.adapters.dvc import repo as versioning

    fresh = uptodate.up_to_date(spec)
    stated = {s.name: s for s in verdict()} if verdict is not None and not all(fresh.values()) else {}
    for name, state in stated.items():
        fresh[name] = fresh.get(name, False) or not state.outdated
    # In a DVC project an imported module's change outdates a task too (as `mlnb status` says),
    # and with it everything downstream.
    modules = versioning.changed_modules(spec) if versioning.is_dvc_repo(spec.root) else {}
    outdated: dict[str, bool] = {}
    for name, task in spec.tasks.items():  # pipeline order: upstream first
        outdated[name] = not fresh[name] or name in modules or any(outdated[u] for u in task.upstream)
    found = []
    for name, task in spec.tasks.items():
        if only in (None, name):
            one = explain_task(spec, task, outdated, stated[name].reasons if name in stated else ())
            extra = tuple(Change("module", f"imported module changed: {m}") for m in modules.get(name, []))
            if extra:
                one = Explanation(name, True, extra + tuple(c for c in one.changes if c.kind != "record"))
            found.append(one)
    return found


def accept(spec: PipelineSpec, name: str, force: bool = False) -> Explanation:
    """Record the current source of task ``name`` as the one its products were made with.

    Refused (UserInputError) unless every change is cosmetic, or ``force``; never for a missing
    product or run record, a param or an upstream change (those need a run)."""
    (found,) = explain(spec, name)
    if not found.outdated:
        raise UserInputError(f"task {name} is up to date: nothing to accept")
    blocking = [c for c in found.changes if c.kind not in ("cell", "source")]
    if blocking:
        raise UserInputError(f"task {name}: {blocking[0].summary}: only a source edit can be accepted; run "
                             f"`mlnb build`")
    if not found.cosmetic_only and not force:
        first = next(c for c in found.changes if not c.cosmetic)
        raise UserInputError(f"task {name}: {first.summary} is not cosmetic; `mlnb accept {name} --force` "
                             f"records it anyway (the products stay as they are)")
    code = _source_code(spec.tasks[name])
    for product in spec.tasks[name].products.values():
        meta_path = uptodate.metadata_path(product)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["stored_source_code"] = code  # timestamp and params stay: downstream tasks stay current
        with atomic_write(meta_path, encoding="utf-8") as fh:
            json.dump(meta, fh)
    return found
