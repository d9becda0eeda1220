"""From sections and their def/use facts to a plan: steps, hand-offs, imports, carried code.

Resolution of a name a step reads, against what earlier steps bound (last writer wins):

* an import -> the import statement is replicated into the step;
* a ``def``/``class`` -> its source is carried into the step (with what it needs);
* a parameter (from the original ``parameters`` cell) -> a task param from ``env.yaml``;
* a value -> loaded from the step that last bound or mutated it, which exports it.

A value that cannot be handed off (a generator, an open file, a lock, a module) makes the
producer and consumer (and every step between) one step; the plan says so.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any

from mlnb.convert.cells import CodeCell
from mlnb.convert.rules import NP_RNG, PY_RNG
from mlnb.convert.scope import CLASS, FUNCTION, IMPORT, PARAM, VALUE, Analyzer, Binding, FuncInfo, rebind_mutated
from mlnb.convert.split import Section
from mlnb.errors import ConvertError


@dataclass
class Step:
    name: str
    cells: list[int]
    title: str = ""
    upstream: list[str] = field(default_factory=list)
    loads: dict[str, str] = field(default_factory=dict)  # variable -> producing step
    exports: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    config: list[str] = field(default_factory=list)
    carried: list[FuncInfo] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    steps: list[Step]
    params: dict[str, Any]
    code: dict[int, CodeCell]  # original cell index -> analysed code cell (parameters cell excluded)
    warnings: list[str] = field(default_factory=list)
    merges: list[str] = field(default_factory=list)
    stash: bool = False  # the notebook uses `product`/`upstream` itself: keep Ploomber's under other names


@dataclass
class _Blocked:
    first: int
    last: int
    message: str


def parameters(code: dict[int, CodeCell]) -> tuple[dict[str, Any], int | None, str]:
    """Literal assignments of the ``parameters`` cell, its index, and its remaining code."""
    for index, cell in code.items():
        if not cell.is_parameters:
            continue
        params: dict[str, Any] = {}
        rest: list[str] = []
        for stmt in cell.tree().body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                try:
                    value = ast.literal_eval(stmt.value)
                except ValueError:
                    value = ...
                if _yaml_safe(value):
                    params[stmt.targets[0].id] = value
                    continue
            rest.append(ast.get_source_segment(cell.python, stmt) or ast.unparse(stmt))
        return params, index, "\n".join(rest)
    return {}, None, ""


def _yaml_safe(value: Any) -> bool:
    """True for values that survive env.yaml unchanged (no tuples, sets, bytes, complex)."""
    if value is None or isinstance(value, bool | int | float | str):
        return not (isinstance(value, float) and value != value)
    if isinstance(value, list):
        return all(_yaml_safe(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _yaml_safe(v) for k, v in value.items())
    return False


def _seeded(code: dict[int, CodeCell]) -> frozenset[str]:
    """Global RNGs the notebook seeds (``np.random.seed``, ``random.seed``): only then is
    their state worth handing from step to step."""
    found = set()
    for cell in code.values():
        for node in ast.walk(cell.tree()):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "seed":
                owner = node.func.value
                if isinstance(owner, ast.Attribute) and owner.attr == "random":
                    found.add(NP_RNG)
                elif isinstance(owner, ast.Name) and owner.id == "random":
                    found.add(PY_RNG)
    return frozenset(found)


def _config_names(statement: str) -> list[str]:
    if statement.lstrip().startswith("%"):
        return []
    return sorted({n.id for n in ast.walk(ast.parse(statement)) if isinstance(n, ast.Name)})


def _resolve(sections: list[Section], code: dict[int, CodeCell], params: dict[str, Any]) -> list[Step] | _Blocked:
    env: dict[str, Binding] = {p: Binding(PARAM, -1, scalar=not isinstance(v, list | dict)) for p, v in params.items()}
    seeded = _seeded(code)
    steps = [Step(s.name, s.cells, s.title) for s in sections]
    config: list[str] = []
    links: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    for k, sec in enumerate(sections):
        an = Analyzer(env, k, seeded, links, calls)
        for i in sec.cells:
            if i in code:
                an.cell(code[i])
        facts = an.facts
        step = steps[k]
        step.config = list(dict.fromkeys(config))
        reads = list(facts.reads)
        for name, b in facts.bindings.items():  # bound only on some paths: the old value must come in
            old = env.get(name)
            if name not in facts.definite and old is not None and old.kind in (VALUE, PARAM) and b.kind == VALUE:
                reads.append(name)
        carried: dict[str, FuncInfo] = {}
        queue = list(dict.fromkeys(reads + [n for c in step.config for n in _config_names(c)]))
        seen: set[str] = set()
        while queue:
            name = queue.pop(0)
            if name in seen:
                continue
            seen.add(name)
            b = env.get(name)
            if b is None:
                continue
            if b.kind == IMPORT:
                step.imports.append(b.statement)
            elif b.kind == FUNCTION and b.func is not None and any(
                    (h := env.get(n)) is not None and h.kind in (VALUE, PARAM) for n in b.func.header):
                # defaults/decorators computed from values at definition time: hand the function object on
                step.loads[name] = steps[b.step].name
                if name not in steps[b.step].exports:
                    steps[b.step].exports.append(name)
                queue += sorted(b.func.deferred)
            elif b.kind in (FUNCTION, CLASS) and b.func is not None:
                carried[name] = b.func
                queue += sorted(b.func.header | b.func.deferred)
            elif b.kind == PARAM:
                step.params[name] = params[name]
            elif b.kind == VALUE:
                if b.unserialisable:
                    producer = steps[b.step].name
                    return _Blocked(b.step, k, f"variable `{name}` ({b.unserialisable}) cannot be handed off from "
                                               f"step `{producer}` to step `{step.name}`")
                step.loads[name] = steps[b.step].name
                if name not in steps[b.step].exports:
                    steps[b.step].exports.append(name)
                # instances of notebook classes unpickle against the class: carry every class the producer saw
                for cname, cb in env.items():
                    if cb.kind == CLASS and cb.step <= b.step and cname not in seen:
                        queue.append(cname)
        step.carried = sorted(carried.values(), key=lambda f: f.order)
        step.imports = list(dict.fromkeys(step.imports))
        step.upstream = list(dict.fromkeys(v for v in step.loads.values()))
        config += facts.config
        rebind_mutated(env, facts, k)
    for step in steps:
        step.exports.sort()
    return steps


def _without_codeless(sections: list[Section], code: dict[int, CodeCell]) -> list[Section]:
    """Fold sections with no code left (e.g. only the parameters cell) into the next one."""
    out: list[Section] = []
    pending: list[int] = []
    for sec in sections:
        if not any(i in code and code[i].python.strip() for i in sec.cells):
            pending += sec.cells
            continue
        sec.cells = sorted(pending + sec.cells)
        pending = []
        out.append(sec)
    if pending and out:
        out[-1].cells = sorted(out[-1].cells + pending)
    return out or sections


def make_plan(cells: list[dict[str, Any]], sections: list[Section]) -> Plan:
    """Resolve dependencies, merging steps across any value that cannot be handed off."""
    from mlnb.convert.cells import code_cell

    code = {i: code_cell(i, c) for i, c in enumerate(cells) if c.get("cell_type") == "code"}
    params, pindex, rest = parameters(code)
    if pindex is not None:
        if rest.strip():
            code[pindex] = CodeCell(pindex, rest, rest)
        else:
            del code[pindex]
    warnings = [w for c in code.values() for w in c.warnings]
    merges: list[str] = []
    sections = _without_codeless([Section(s.name, list(s.cells), s.title) for s in sections], code)
    if not any(i in code and code[i].python.strip() for s in sections for i in s.cells):
        raise ConvertError("the notebook has no code cells to convert")
    while True:
        result = _resolve(sections, code, params)
        if isinstance(result, list):
            break
        first, last = result.first, result.last
        names = [s.name for s in sections[first:last + 1]]
        merged = Section(names[0], [i for s in sections[first:last + 1] for i in s.cells], sections[first].title)
        sections[first:last + 1] = [merged]
        merges.append(f"merged steps {', '.join(f'`{n}`' for n in names)} into `{names[0]}`: {result.message}")
    used = {n.id for c in code.values() for n in ast.walk(c.tree()) if isinstance(n, ast.Name)}
    return Plan(result, params, code, warnings, merges, stash=bool(used & {"product", "upstream"}))
