"""``mlnb nbval check`` / ``bless``: the same comparison nbval makes, outside pytest (application layer).

Blessed references live in ``tests/nbval/<task>.ipynb``, the rules in ``tests/nbval/sanitize.cfg``.
Both commands build the nbval workspace with ``env.ci.yaml`` (see :mod:`.workspace`), execute each
reference there with a real kernel (nbclient, the notebook's kernelspec, as papermill and nbval do)
and compare / rewrite. Returns results; prints nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.adapters.nbval import reference, sanitize, workspace
from mlnb.core.config import load_env
from mlnb.core.io import atomic_write, environ
from mlnb.core.notebooks import read_notebook
from mlnb.core.spec import PipelineSpec, load_spec
from mlnb.errors import RegressionError, UserInputError

REF_DIR = Path("tests") / "nbval"
SANITIZE_FILE = "sanitize.cfg"
CONFTEST = ('"""nbval regression checks of the task notebooks (`mlnb nbval bless` / `make nbval`; see README)."""\n\n'
            "from mlnb.adapters.nbval.plugin import *  # noqa: F403 (its pytest hooks)\n")
OLD_CONFTESTS = (CONFTEST.replace("*  # noqa: F403 (its pytest hooks)",
                                  "pytest_generate_tests, pytest_runtest_setup  # noqa: F401"),)
TEST_MODULE = ('"""Each blessed reference holds its task notebook\'s current code (cells matched by id)."""\n\n'
               "from mlnb.adapters.nbval.plugin import test_reference_is_current  # noqa: F401\n")
Progress = Callable[[str], None]


@dataclass
class NotebookResult:
    task: str
    status: str  # ok | changed | failed | stale | missing | orphan
    message: str = ""
    diffs: list[reference.CellDiff] = field(default_factory=list)
    elapsed: float = 0.0


def ci_spec(root: Path, env_file: str = workspace.CI_ENV) -> PipelineSpec:
    path = root / env_file
    if not path.is_file():
        raise UserInputError(f"{env_file}: the CI parameter set for nbval is missing")
    return load_spec(root / "pipeline.yaml", load_env(path))


def problem(root: Path, task: str) -> str | None:
    """Why ``tests/nbval/<task>.ipynb`` cannot vouch for the current task notebook (None: it can)."""
    spec = ci_spec(root)
    ref_path = root / REF_DIR / f"{task}.ipynb"
    if task not in spec.tasks:
        return f"{ref_path.relative_to(root)}: no task {task!r} in pipeline.yaml: delete the reference"
    if not ref_path.exists():
        return f"{task}: no blessed reference: run `mlnb nbval bless {task}`"
    why = reference.staleness(read_notebook(ref_path), read_notebook(spec.tasks[task].source))
    if why:
        return (f"{ref_path.relative_to(root)}: stale reference ({why} in "
                f"{spec.tasks[task].source.relative_to(root)}): run `mlnb nbval bless {task}`")
    return None


def reference_names(root: Path) -> list[str]:
    """Tasks with a reference, plus references without a task (both need attention)."""
    spec = ci_spec(root)
    refs = sorted(p.stem for p in (root / REF_DIR).glob("*.ipynb"))
    return [t for t in spec.tasks if t in refs] + [r for r in refs if r not in spec.tasks]


def execute(nb: dict[str, Any], root: Path, ws: Path, timeout: int = 1800) -> tuple[dict[str, Any], str | None]:
    """Execute a reference in the workspace (cwd ``tests/nbval``, as nbval does); return the executed
    notebook and, if the kernel died or timed out, why. A raising cell is recorded as its error output
    and execution goes on, as under nbval."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    node = nbformat.reads(json.dumps(nb), as_version=4)  # joins list-of-lines sources, as nbformat.read does
    code_ids = [c.get("id") for c in node.cells if c.cell_type == "code"]
    current = {"at": "?"}

    def started(cell: Any, cell_index: int) -> None:
        if cell.get("id") in code_ids:  # named as nbval names it: "Cell N" counts code cells
            current["at"] = f"Cell {code_ids.index(cell.get('id'))} (id {cell.get('id')})"

    client = NotebookClient(node, timeout=timeout, allow_errors=True, on_cell_start=started,
                            resources={"metadata": {"path": str(root / REF_DIR)}})
    failure = None
    with environ(**workspace.execution_env(ws)):
        try:
            client.execute()
        except DeadKernelError:
            failure = f"the kernel died while executing {current['at']}"
        except CellTimeoutError:
            failure = f"{current['at']} timed out after {timeout} s"
        except Exception as exc:  # no such kernel, kernel failed to start: a failure of this notebook
            failure = f"cannot run the kernel: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return json.loads(nbformat.writes(node)), failure


def check(root: Path, tasks: list[str] | None = None, progress: Progress = lambda _: None) -> list[NotebookResult]:
    """Compare every (or each named) blessed reference with a fresh execution in the workspace."""
    names = tasks or reference_names(root)
    spec = ci_spec(root)
    for name in tasks or ():
        if name not in spec.tasks:
            raise UserInputError(f"pipeline.yaml: no task named {name!r} (tasks: {', '.join(spec.tasks)})")
    missing = [t for t in spec.tasks if t not in names and not tasks]
    results = [NotebookResult(t, "missing", f"{t}: no blessed reference: run `mlnb nbval bless {t}`")
               for t in missing]
    runnable = []
    for name in names:
        why = problem(root, name)
        if why:
            status = "orphan" if name not in spec.tasks else "missing" if "no blessed" in why else "stale"
            results.append(NotebookResult(name, status, why))
        else:
            runnable.append(name)
    if runnable:
        rules = sanitize.load(root / REF_DIR / SANITIZE_FILE)
        progress(f"building the nbval workspace with {workspace.CI_ENV} ...")
        built = workspace.prepare(root)
        for i, name in enumerate(runnable, 1):
            if name in built.failed:
                results.append(NotebookResult(name, "failed", built.failed[name]))
                continue
            start = time.perf_counter()
            progress(f"[{i}/{len(runnable)}] executing {REF_DIR / name}.ipynb ...")
            ref = read_notebook(root / REF_DIR / f"{name}.ipynb")
            injected = reference.injected_source(spec, spec.tasks[name], workspace.CI_ENV)
            executed, failure = execute(reference.with_injected(ref, injected), root, built.path)
            diffs = reference.compare(f"{REF_DIR / name}.ipynb", ref, executed, rules)
            status = "failed" if failure else "changed" if diffs else "ok"
            message = failure or (diffs[0].describe() if diffs else "")
            results.append(NotebookResult(name, status, message, diffs, time.perf_counter() - start))
    order = {t: i for i, t in enumerate([*spec.tasks, *names])}
    return sorted(results, key=lambda r: order.get(r.task, len(order)))


def _errors(nb: dict[str, Any]) -> str | None:
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and "raises-exception" not in cell.get("metadata", {}).get("tags", []):
                return f"cell id {cell.get('id')} raised {out.get('ename')}: {out.get('evalue')}"
    return None


def bless(root: Path, tasks: list[str] | None = None, progress: Progress = lambda _: None) -> list[tuple[str, str]]:
    """Regenerate references (all tasks, or the named ones) from the current notebooks; return
    (task, per-cell diff against the previous reference). Nothing is written for a notebook that
    raised or killed its kernel: that is a failure to fix, not a behaviour to bless."""
    spec = ci_spec(root)
    for name in tasks or ():
        if name not in spec.tasks:
            raise UserInputError(f"pipeline.yaml: no task named {name!r} (tasks: {', '.join(spec.tasks)})")
    ref_dir = root / REF_DIR
    ref_dir.mkdir(parents=True, exist_ok=True)
    _write_support_files(ref_dir)
    rules = sanitize.load(ref_dir / SANITIZE_FILE)
    progress(f"building the nbval workspace with {workspace.CI_ENV} ...")
    built = workspace.prepare(root)
    names = tasks or list(spec.tasks)
    broken = [n for n in names if n in built.failed]
    if broken:
        raise RegressionError(f"{built.failed[broken[0]]}; nothing blessed")
    blessed = []
    for i, name in enumerate(names, 1):  # execute all first: nothing is rewritten unless every one works
        task = spec.tasks[name]
        progress(f"[{i}/{len(names)}] executing {task.source.relative_to(root)} ...")
        fresh = reference.make_reference(read_notebook(task.source),
                                         reference.injected_source(spec, task, workspace.CI_ENV))
        executed, failure = execute(fresh, root, built.path)
        failure = failure or _errors(executed)
        if failure:
            raise RegressionError(f"{task.source.relative_to(root)}: {failure}; nothing blessed for {name} "
                                  f"(nor any other reference)")
        blessed.append((name, reference.normalise(executed)))
    changes = []
    for name, executed in blessed:
        path = ref_dir / f"{name}.ipynb"
        old = read_notebook(path) if path.exists() else None
        changes.append((name, reference.output_diff(f"{REF_DIR / name}.ipynb", old, executed, rules)))
        with atomic_write(path, encoding="utf-8") as fh:
            fh.write(json.dumps(executed, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    return changes


def _write_support_files(ref_dir: Path) -> None:
    """sanitize.cfg (regenerated, the user's rules kept), conftest.py and the stale test (if missing)."""
    cfg = ref_dir / SANITIZE_FILE
    old = cfg.read_text(encoding="utf-8") if cfg.exists() else ""
    text = sanitize.render(sanitize.user_part(old))
    if text != old:
        with atomic_write(cfg, encoding="utf-8") as fh:
            fh.write(text)
    support = (("conftest.py", CONFTEST, OLD_CONFTESTS), ("test_references.py", TEST_MODULE, ()))
    for name, content, old_versions in support:
        path = ref_dir / name
        if not path.exists() or path.read_text(encoding="utf-8") in old_versions:  # ours, never the user's edits
            with atomic_write(path, encoding="utf-8") as fh:
                fh.write(content)
