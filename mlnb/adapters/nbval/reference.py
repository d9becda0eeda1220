"""Blessed reference notebooks: how one is made from a task notebook, when it is stale, and how
its outputs are compared with a fresh execution (pure logic: no kernel, no files written).

A reference is the task notebook from ``notebooks/`` with one extra cell after ``parameters``
(id ``injected-parameters``, as papermill tags it) that moves to the nbval workspace and sets the
CI parameters, then the outputs of executing it there. Cells are matched by cell id, never by
position, so a markdown cell inserted in the task notebook shifts nothing.

Comparison follows nbval (``nbval.plugin.IPyNbCell.compare_outputs``): streams coalesced
(``\\r``/``\\b`` applied), outputs flattened to {mime type or stream name: [texts]}, metadata,
tracebacks, execution counts, widget model ids and raster images left out (plots compare by
presence: an image output that appears or disappears still fails), then the sanitising rules.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.core.spec import PipelineSpec, TaskSpec

INJECTED_ID = "injected-parameters"
OUT_DIR = "nbval-out"  # re-executed notebooks write their products here inside the workspace
WORKSPACE_ENV = "MLNB_NBVAL_WORKSPACE"
SKIP_KEYS = {"metadata", "traceback", "prompt_number", "output_type", "name", "execution_count",
             "application/vnd.jupyter.widget-view+json", "image/png", "image/jpeg", "transient"}
IGNORE_TAGS = {"nbval-ignore-output", "nbval-skip"}
_CR = re.compile(r"^.*\r(?=[^\n])", re.MULTILINE)
_BS = re.compile("[^\n\x08]\x08")  # a character erased by a backspace


@dataclass(frozen=True)
class CellDiff:
    notebook: str
    cell_id: str
    index: int  # position among the notebook's code cells, 0-based: nbval's "Cell N"
    first_line: str
    diff: str  # unified diff of the sanitised outputs, reference -> now

    def describe(self) -> str:
        return f"{self.notebook}::Cell {self.index} (id {self.cell_id}, {self.first_line[:40]!r}): output changed"


def source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def injected_source(spec: PipelineSpec, task: TaskSpec, env_file: str) -> str:
    """The injected cell: move to the workspace, then the task's parameters with workspace-relative
    paths (upstream products as built there, own products under ``nbval-out/``)."""
    root = spec.root
    upstream = {up: {k: _rel(p, root) for k, p in spec.tasks[up].products.items()} for up in task.upstream}
    product = {k: f"{OUT_DIR}/{task.name}/{p.name}" for k, p in task.products.items()}
    lines = [f"# Parameters injected by `mlnb nbval` from {env_file}; paths are relative to the nbval workspace",
             "import os as _os",
             "",
             f'_os.chdir(_os.environ["{WORKSPACE_ENV}"])  # set by tests/nbval/conftest.py and `mlnb nbval check`',
             f'_os.makedirs("{OUT_DIR}/{task.name}", exist_ok=True)  # as Ploomber makes product directories',
             f"upstream = {upstream!r}" if upstream else "upstream = None",
             f"product = {product!r}"]
    lines += [f"{key} = {value!r}" for key, value in task.params.items()]
    return "\n".join(lines)


def make_reference(task_nb: dict[str, Any], injected: str) -> dict[str, Any]:
    """The unexecuted reference: the task notebook with outputs cleared and the injected cell
    after the ``parameters`` cell (or first, when there is none)."""
    nb = copy.deepcopy(task_nb)
    cells = [c for c in nb.get("cells", []) if c.get("id") != INJECTED_ID]
    for cell in cells:
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    at = next((i + 1 for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
    cells.insert(at, {"cell_type": "code", "id": INJECTED_ID, "metadata": {"tags": [INJECTED_ID]},
                      "execution_count": None, "outputs": [], "source": injected})
    nb["cells"] = cells
    nb["nbformat"], nb["nbformat_minor"] = 4, max(5, int(nb.get("nbformat_minor", 5)))  # 4.5+: cell ids
    nb.setdefault("metadata", {}).pop("papermill", None)
    return nb


def with_injected(nb: dict[str, Any], injected: str) -> dict[str, Any]:
    """The reference as it is executed: its injected cell regenerated from the current CI parameters
    (a changed param is then an input change, caught by the outputs it changes, as upstream data is)."""
    nb = copy.deepcopy(nb)
    for cell in nb.get("cells", []):
        if cell.get("id") == INJECTED_ID:
            cell["source"] = injected
    return nb


def normalise(nb: dict[str, Any]) -> dict[str, Any]:
    """Drop what changes on every execution and is never compared (execution timing metadata), so a
    re-bless of an unchanged notebook rewrites the same bytes."""
    nb = copy.deepcopy(nb)
    nb.get("metadata", {}).pop("papermill", None)
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {})
        for key in ("execution", "papermill", "collapsed", "scrolled", "jp-MarkdownHeadingCollapsed"):
            meta.pop(key, None)
    return nb


def code_cells(nb: dict[str, Any]) -> list[tuple[str, str]]:
    """(cell id, source) of the code cells the task notebook contributes (not the injected one)."""
    return [(str(c.get("id")), source(c)) for c in nb.get("cells", [])
            if c.get("cell_type") == "code" and c.get("id") != INJECTED_ID]


def staleness(reference: dict[str, Any], task_nb: dict[str, Any]) -> str | None:
    """Why the reference no longer holds the task notebook's code (None: it does). Matched by id."""
    ref, cur = dict(code_cells(reference)), code_cells(task_nb)
    cur_ids = [i for i, _ in cur]
    if any(i in (None, "None") for i in cur_ids) or len(set(cur_ids)) != len(cur_ids):
        return "the task notebook has code cells without unique ids (save it with JupyterLab 3+ / nbformat 4.5)"
    for index, (cell_id, src) in enumerate(cur):
        if cell_id not in ref:
            return f"code cell {index} (id {cell_id}) was added"
        if ref[cell_id] != src:
            return f"code cell {index} (id {cell_id}) changed"
    for cell_id in ref:
        if cell_id not in cur_ids:
            return f"code cell id {cell_id} was removed"
    if [i for i in ref if i in cur_ids] != cur_ids:
        return "code cells were reordered"
    return None


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else value if isinstance(value, str) else repr(value)


def comparable(cell: dict[str, Any], rules: list[tuple[str, str]]) -> dict[str, list[str]]:
    """A cell's outputs as nbval compares them: {key: [sanitised texts]}."""
    from mlnb.adapters.nbval.sanitize import apply

    streams: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            streams[output.get("name", "stdout")] = streams.get(output.get("name", "stdout"), "") + _text(
                output.get("text", ""))
            continue
        if kind == "error":
            out.setdefault("ename", []).append(str(output.get("ename")))
            out.setdefault("evalue", []).append(apply(str(output.get("evalue")), rules))
            continue
        for mime, value in (output.get("data") or {}).items():
            if mime not in SKIP_KEYS:
                out.setdefault(mime, []).append(apply(_text(value), rules))
        if "data" in output and any(m in output["data"] for m in ("image/png", "image/jpeg")):
            out.setdefault("image", []).append("<image>")  # presence, not pixels
    for name, text in streams.items():
        previous = None
        while previous != text:
            previous, text = text, _BS.sub("", text)
        out.setdefault(name, []).append(apply(_CR.sub("", text), rules))
    return out


def _lines(outputs: dict[str, list[str]]) -> list[str]:
    lines = []
    for key in sorted(outputs):
        for text in outputs[key]:
            lines.append(f"[{key}]")
            lines.extend(f"  {ln}" for ln in text.splitlines())
    return lines


def compare(name: str, reference: dict[str, Any], executed: dict[str, Any],
            rules: list[tuple[str, str]]) -> list[CellDiff]:
    """Cells (matched by id) whose sanitised outputs differ, with a readable diff of each."""
    now = {c.get("id"): c for c in executed.get("cells", [])}
    diffs = []
    code = [c for c in reference.get("cells", []) if c.get("cell_type") == "code"]
    for index, cell in enumerate(code):
        if set(cell.get("metadata", {}).get("tags", [])) & IGNORE_TAGS:
            continue
        new = now.get(cell.get("id"), {"outputs": []})
        old_out, new_out = comparable(cell, rules), comparable(new, rules)
        if old_out != new_out:
            text = "\n".join(difflib.unified_diff(_lines(old_out), _lines(new_out), "blessed", "now", lineterm="", n=1))
            first = next((ln for ln in source(cell).splitlines() if ln.strip()), "")
            diffs.append(CellDiff(name, str(cell.get("id")), index, first, text))
    return diffs


def _as_text(cell: dict[str, Any], rules: list[tuple[str, str]]) -> list[str]:
    return [*source(cell).splitlines(), "--- outputs ---", *_lines(comparable(cell, rules))]


def output_diff(name: str, old: dict[str, Any] | None, new: dict[str, Any], rules: list[tuple[str, str]]) -> str:
    """What a re-bless changes, per cell (code and outputs), as text for a PR description."""
    if old is None:
        return f"{name}: new reference ({len(code_cells(new))} code cells)\n"
    parts = []
    old_cells = {c.get("id"): c for c in old.get("cells", [])}
    code = [c for c in new.get("cells", []) if c.get("cell_type") == "code"]
    for index, cell in enumerate(code):
        before = old_cells.pop(cell.get("id"), None)
        a = [] if before is None else _as_text(before, rules)
        b = _as_text(cell, rules)
        if a != b:
            label = "added" if before is None else "changed"
            body = "\n".join(difflib.unified_diff(a, b, "blessed", "new", lineterm="", n=2))
            parts.append(f"## {name}::Cell {index} (id {cell.get('id')}) {label}\n{body}\n")
    parts += [f"## {name} cell id {cid} removed\n" for cid, c in old_cells.items() if c.get("cell_type") == "code"]
    return "".join(parts)
