"""``mlnb convert --check``: run the original and the generated pipeline, compare what they show.

Compared per original code cell, in the original's order:

* **stdout**: the text a cell printed;
* **displays**: the ``text/plain`` of results and ``display()`` calls (not figures);
* **figures**: how many image outputs (png/jpeg/svg) the cell produced.

Text is normalised for what legitimately differs between two runs: memory addresses
(``at 0x7f...``), ``%%time``/``%timeit`` timings. stderr (warnings) is not compared.
"""

from __future__ import annotations

import difflib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.core.notebooks import cell_source, read_notebook
from mlnb.core.outcomes import TaskStatus

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,16}")
_TIMING = re.compile(r"^(CPU times:|Wall time:).*$|^.*\bper loop \(mean ± std\. dev\..*$", re.MULTILINE)
_IMAGE = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
_PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


@dataclass
class CellOutput:
    stdout: str = ""
    displays: list[str] = field(default_factory=list)
    figures: int = 0
    error: str = ""


def normalise(text: str) -> str:
    return _TIMING.sub("<timing>", _ADDRESS.sub("0x…", text))


def cell_outputs(cell: dict[str, Any]) -> CellOutput:
    out = CellOutput()
    for o in cell.get("outputs", []):
        kind = o.get("output_type")
        if kind == "stream" and o.get("name") == "stdout":
            text = o.get("text", "")
            out.stdout += "".join(text) if isinstance(text, list) else text
        elif kind in ("execute_result", "display_data"):
            data = o.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                continue  # widgets (tqdm.notebook progress bars): their text is timing, not results
            if any(m in data for m in _IMAGE):
                out.figures += 1
            elif "text/plain" in data:
                text = data["text/plain"]
                out.displays.append(normalise("".join(text) if isinstance(text, list) else text))
        elif kind == "error":
            out.error = f"{o.get('ename')}: {o.get('evalue')}"
    out.stdout = normalise(out.stdout)
    return out


def original_outputs(executed: dict[str, Any]) -> dict[int, CellOutput]:
    """Outputs of an executed original, keyed by the cell's position in the source notebook."""
    cells = [c for c in executed["cells"] if not _PAPERMILL_TAGS & set(c.get("metadata", {}).get("tags", []))]
    return {i: cell_outputs(c) for i, c in enumerate(cells) if c.get("cell_type") == "code"}


def pipeline_outputs(notebooks: list[Path]) -> dict[int, CellOutput]:
    """Outputs of the executed task notebooks, keyed by the original cell each came from."""
    found: dict[int, CellOutput] = {}
    for path in notebooks:
        for c in read_notebook(path)["cells"]:
            index = c.get("metadata", {}).get("mlnb", {}).get("source_cell")
            if c.get("cell_type") == "code" and isinstance(index, int):
                found[index] = cell_outputs(c)
    return found


@dataclass
class CheckReport:
    original: dict[int, CellOutput]
    pipeline: dict[int, CellOutput]
    failed: list[str] = field(default_factory=list)  # "task: where" for tasks that failed
    sources: dict[int, str] = field(default_factory=dict)

    def _text(self, side: dict[int, CellOutput], what: str) -> list[str]:
        lines = []
        for i in sorted(self.original):
            cell = side.get(i)
            if what == "stdout":
                body = cell.stdout if cell else ""
            else:
                body = "\n".join(cell.displays) + "\n" if cell and cell.displays else ""
            if body:
                lines += [f"[cell {i}] {line}\n" for line in body.splitlines()]
        return lines

    @property
    def stdout_same(self) -> bool:
        return self._text(self.original, "stdout") == self._text(self.pipeline, "stdout")

    @property
    def displays_same(self) -> bool:
        return self._text(self.original, "displays") == self._text(self.pipeline, "displays")

    def figures(self) -> tuple[int, int]:
        return (sum(c.figures for c in self.original.values()),
                sum(c.figures for i, c in self.pipeline.items() if i in self.original))

    @property
    def same(self) -> bool:
        a, b = self.figures()
        return not self.failed and self.stdout_same and self.displays_same and a == b

    def diff(self) -> str:
        out: list[str] = []
        for what in ("stdout", "displays"):
            out += difflib.unified_diff(self._text(self.original, what), self._text(self.pipeline, what),
                                        f"original ({what})", f"pipeline ({what})", n=1)
        per_cell = [f"cell {i}: {c.figures} figure(s) in the original, "
                    f"{self.pipeline[i].figures if i in self.pipeline else 0} in the pipeline\n"
                    for i, c in self.original.items() if c.figures != (self.pipeline[i].figures if i in self.pipeline
                                                                         else 0)]
        return "".join(out + per_cell)

    def describe(self) -> str:
        a, b = self.figures()
        lines = [f"check: stdout {'same' if self.stdout_same else 'DIFFERENT'}, displayed values "
                 f"{'same' if self.displays_same else 'DIFFERENT'}, figures {a} vs {b}"]
        lines += [f"check: task failed: {f}" for f in self.failed]
        if not self.same:
            lines.append(self.diff().rstrip("\n"))
        lines.append("check: the pipeline reproduces the original" if self.same else
                     "check: the pipeline does NOT reproduce the original")
        return "\n".join(lines)


def run_original(path: Path, workdir: Path) -> dict[str, Any]:
    """Execute the original notebook with papermill in its own folder; return it (errors included)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from mlnb.adapters.mlflow.tracking import telemetry_off

    telemetry_off()
    from mlnb.convert.api import kernel_for, load_notebook

    kernel = kernel_for(load_notebook(path))[0]["name"]
    out = workdir / f"original-{path.stem}.ipynb"
    try:
        papermill.execute_notebook(str(path), str(out), cwd=str(path.parent), kernel_name=kernel,
                                   progress_bar=False, log_output=False)
    except PapermillExecutionError:
        pass  # compare what ran; the error output is part of it
    return read_notebook(out)


def run_pipeline(root: Path) -> tuple[list[Path], list[str]]:
    """Build the generated pipeline (every task, fresh); return executed notebooks and failures."""
    from mlnb.adapters.ploomber import pipeline
    from mlnb.core.project import load_project

    project = load_project(root)
    outcomes, _ = pipeline.build(project.spec, pipeline.open_dag(project.spec, project.env), force=True)
    notebooks = [o.notebook for o in outcomes if o.notebook is not None and o.notebook.exists()]
    failed = [f"{o.name}: {o.failure.describe() if o.failure else o.status}" for o in outcomes
              if o.status in (TaskStatus.FAILED, TaskStatus.NOT_RUN)]
    return notebooks, failed


def check_conversion(original: Path, root: Path) -> CheckReport:
    """Run both and compare (the working directory must be ``root``: Ploomber resolves cwd there)."""
    with tempfile.TemporaryDirectory(prefix="mlnb-check-") as tmp:
        executed = run_original(original.resolve(), Path(tmp))
    notebooks, failed = run_pipeline(root)
    sources = {i: cell_source(c) for i, c in enumerate(read_notebook(original)["cells"])}
    return CheckReport(original_outputs(executed), pipeline_outputs(notebooks), failed, sources)
