"""No import cycles among mlnb's modules, counting imports inside functions (which import-linter's
layers do not forbid within one layer, and which hide a cycle until the call happens).

The graph: every ``import mlnb.x`` / ``from mlnb.x import y`` anywhere in a module (top level, in
functions, under ``if TYPE_CHECKING``), where ``y`` counts as the module ``mlnb.x.y`` when that is one;
a package's ``__init__`` counts as the package. Cycles are the strongly connected components."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "mlnb"
# The one-release aliases of the old flat paths (mlnb/task.py -> mlnb.tasklib.task, ...) are not part of
# the graph: nothing in mlnb imports them.
ALIASES = {"mlnb.task", "mlnb.data", "mlnb.evaluation", "mlnb.modeling", "mlnb.gate", "mlnb.io"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in root.rglob("*.py") if "labextension" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for target in found:
                while target and target not in files:  # mlnb.x.y.func -> mlnb.x.y
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("mlnb"):
                    targets.add(target)
        graph[name] = targets - ALIASES
    return {k: v for k, v in graph.items() if k not in ALIASES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_among_mlnb_modules() -> None:
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_a_cycle_through_an_import_inside_a_function(tmp_path: Path) -> None:
    pkg = tmp_path / "mlnb"
    (pkg / "core").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("from mlnb.core import b\n")
    (pkg / "core" / "b.py").write_text("def f():\n    from mlnb.core.a import thing\n    return thing\n")
    (pkg / "core" / "c.py").write_text("import mlnb.core.b\n")
    assert cycles(import_graph(pkg)) == [["mlnb.core.a", "mlnb.core.b"]]
