"""Static def/use analysis of notebook code with Python's ``ast`` (nothing is executed).

:class:`Analyzer` walks one step's cells in order, knowing what earlier steps bound
(``env``: name -> :class:`Binding`), and records

* ``reads``: names read before this step *definitely* binds them (they must come in);
* ``bindings``: what the step binds, and how (value, import, function, class);
* ``mutated``: objects changed in place (``df["x"] = ...``, ``lst.append``,
  ``df.drop(..., inplace=True)``, ``model.fit(...)``, a notebook function that mutates
  its argument): the step re-exports them;
* ``config``: session set-up statements (``pd.set_option``, ``warnings.filterwarnings``,
  ``plt.style.use``, ``%matplotlib inline``) that later steps replicate.

Scoping follows Python: comprehension targets and lambda parameters are local, a walrus
binds in the enclosing scope, ``except ... as e`` unbinds ``e``, function bodies are read
when the function is *used* (their free globals come from :mod:`symtable`).
"""

from __future__ import annotations

import ast
import symtable
from dataclasses import dataclass, field, replace

from mlnb.convert.cells import CodeCell
from mlnb.convert.rules import (
    CONFIG_CALLS,
    CONFIG_TARGETS,
    MUTATING_FUNCTIONS,
    NP_RNG,
    PURE_METHODS,
    PY_RNG,
    RNG_CONSUMERS,
    unserialisable_call,
)

VALUE, PARAM, IMPORT, FUNCTION, CLASS, DELETED = "value", "param", "import", "function", "class", "deleted"


@dataclass(frozen=True)
class FuncInfo:
    """A top-level ``def``/``class``: its text, and the globals it needs and touches."""

    name: str
    kind: str  # function | class
    source: str
    order: tuple[int, int]  # (cell index, line) of the definition
    header: frozenset[str]  # read when the def runs: decorators, defaults, bases, class body
    deferred: frozenset[str]  # free globals of the bodies, read when called
    mutates: tuple[tuple[int, str], ...] = ()  # (position, parameter name) changed in place
    assigns: frozenset[str] = frozenset()  # names bound through ``global``
    generator: bool = False


@dataclass(frozen=True)
class Binding:
    kind: str
    step: int  # step that last bound or mutated the name (-1: the parameters cell)
    statement: str = ""  # for imports: the import statement that binds just this name
    qualname: str = ""  # for imports: the module/object path (``numpy``, ``os.path.join``)
    func: FuncInfo | None = None
    unserialisable: str = ""  # why the value cannot be handed off ("a generator", ...)


@dataclass
class StepFacts:
    reads: dict[str, None] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)
    mutated: dict[str, None] = field(default_factory=dict)
    definite: set[str] = field(default_factory=set)
    config: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _root(node: ast.AST) -> str | None:
    """``df`` for ``df``, ``df.loc[...]``, ``df["a"].b`` (not through calls)."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _target_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Tuple | ast.List):
        return [n for elt in node.elts for n in _target_names(elt)]
    if isinstance(node, ast.Starred):
        return _target_names(node.value)
    return []


def _nested_free(node: ast.AST) -> tuple[set[str], set[str]]:
    """Free names read in a lambda/comprehension, and names its walruses bind outside."""
    local: set[str] = set()
    walrus: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Lambda):
            a = sub.args
            local.update(x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if x)
        elif isinstance(sub, ast.comprehension):
            local.update(_target_names(sub.target))
        elif isinstance(sub, ast.NamedExpr):
            walrus.add(sub.target.id)
    loads = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return (loads - local) | (loads & walrus), walrus


def _table_globals(table: symtable.SymbolTable) -> set[str]:
    names: set[str] = set()
    for sym in table.get_symbols():
        if sym.is_referenced() and (sym.is_global() or sym.is_declared_global()):
            names.add(sym.get_name())
    for child in table.get_children():
        names |= _table_globals(child)
    return names


def _mutated_params(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[tuple[int, str], ...]:
    a = node.args
    positional = [x.arg for x in [*a.posonlyargs, *a.args]]
    params = set(positional) | {x.arg for x in a.kwonlyargs}
    hit: set[str] = set()
    for sub in ast.walk(node):
        targets: list[ast.AST] = []
        if isinstance(sub, ast.Assign | ast.Delete):
            targets = list(sub.targets)
        elif isinstance(sub, ast.AugAssign | ast.AnnAssign):
            targets = [sub.target]
        for t in targets:
            if isinstance(t, ast.Subscript | ast.Attribute) and _root(t) in params:
                hit.add(_root(t) or "")
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute):
            root = _root(sub.func.value)
            if root in params and _mutating_method(sub):
                hit.add(root or "")
    return tuple((positional.index(p) if p in positional else -1, p) for p in sorted(hit))


def _mutating_method(call: ast.Call) -> bool:
    assert isinstance(call.func, ast.Attribute)
    inplace = any(k.arg == "inplace" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                  for k in call.keywords)
    return inplace or call.func.attr not in PURE_METHODS


def function_info(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, text: str, cell: int) -> FuncInfo:
    """Describe a top-level definition; ``text`` is its cell's analysable source."""
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    lines = text.split("\n")[start - 1: node.end_lineno]
    source = "\n".join(lines)
    table = symtable.symtable(source + "\n", "<cell>", "exec").get_children()[0]
    header: set[str] = set()
    for expr in node.decorator_list:
        header |= {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
    if isinstance(node, ast.ClassDef):
        for expr in [*node.bases, *(k.value for k in node.keywords)]:
            header |= {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
        header |= {s.get_name() for s in table.get_symbols() if s.is_referenced() and s.is_global()}
        deferred: set[str] = set()
        for child in table.get_children():
            deferred |= _table_globals(child)
        return FuncInfo(node.name, CLASS, source, (cell, start), frozenset(header), frozenset(deferred))
    a = node.args
    for expr in [*a.defaults, *(d for d in a.kw_defaults if d is not None)]:
        header |= {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)}
    declared = {s.get_name() for s in table.get_symbols() if s.is_declared_global()}
    assigns = {s.get_name() for s in table.get_symbols() if s.is_declared_global() and s.is_assigned()}
    own = [n for n in ast.walk(node) if isinstance(n, ast.Yield | ast.YieldFrom)]
    nested = {id(n) for d in ast.walk(node) if d is not node and isinstance(
        d, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) for n in ast.walk(d)}
    generator = any(id(n) not in nested for n in own)
    return FuncInfo(node.name, FUNCTION, source, (cell, start), frozenset(header),
                    frozenset(_table_globals(table) | declared), _mutated_params(node), frozenset(assigns), generator)


class Analyzer:
    """Def/use facts for one step; feed it the step's cells in order."""

    def __init__(self, env: dict[str, Binding], step: int, seeded: frozenset[str] = frozenset()) -> None:
        self.env = env  # bindings visible when the step starts
        self.step = step
        self.seeded = seeded  # RNGs the notebook seeds somewhere: their consumers chain
        self.facts = StepFacts()
        self._cell: CodeCell | None = None
        self._maybe = 0  # >0 inside a branch/loop body: bindings are not definite

    # -- names -------------------------------------------------------------------
    def scope(self, name: str) -> Binding | None:
        return self.facts.bindings.get(name) or self.env.get(name)

    def read(self, name: str) -> None:
        if name not in self.facts.definite:
            self.facts.reads.setdefault(name, None)

    def load(self, name: str, _seen: set[str] | None = None) -> None:
        """Read ``name``; reading a function also reads what its body needs."""
        self.read(name)
        b = self.scope(name)
        if b is None or b.func is None:
            return
        seen = _seen if _seen is not None else set()
        if name in seen:
            return
        seen.add(name)
        needs = set(b.func.deferred)
        if name not in self.facts.bindings:  # carried from an earlier step: its header runs here too
            needs |= b.func.header
        for n in sorted(needs - {name}):
            self.load(n, seen)

    def bind(self, name: str, binding: Binding) -> None:
        self.facts.bindings[name] = binding
        self.facts.mutated.pop(name, None)
        if self._maybe:
            self.facts.definite.discard(name)
        else:
            self.facts.definite.add(name)

    def bind_value(self, name: str, value: ast.AST | None = None) -> None:
        self.bind(name, Binding(VALUE, self.step, unserialisable=self._why_not(value)))

    def mutate(self, name: str | None) -> None:
        if name is None:
            return
        b = self.scope(name)
        if b is None or b.kind not in (VALUE, PARAM):
            return
        self.read(name)
        if name in self.facts.bindings:
            return  # bound here: exported anyway
        self.facts.mutated.setdefault(name, None)

    def qualname(self, node: ast.AST) -> str | None:
        if isinstance(node, ast.Name):
            b = self.scope(node.id)
            return b.qualname if b is not None and b.kind == IMPORT else None
        if isinstance(node, ast.Attribute):
            base = self.qualname(node.value)
            return f"{base}.{node.attr}" if base else None
        return None

    def _why_not(self, value: ast.AST | None) -> str:
        if isinstance(value, ast.GeneratorExp):
            return "a generator"
        if isinstance(value, ast.Name):
            b = self.scope(value.id)
            if b is not None and b.kind == IMPORT and "." not in b.qualname:
                return "a module"
            return b.unserialisable if b is not None else ""
        if isinstance(value, ast.Call):
            f = value.func
            if isinstance(f, ast.Name):
                b = self.scope(f.id)
                if b is not None and b.func is not None and b.func.generator:
                    return "a generator"
                if b is None:
                    return unserialisable_call(f.id)
            return unserialisable_call(self.qualname(f) or "")
        return ""

    # -- expressions ---------------------------------------------------------------
    def expr(self, node: ast.AST | None) -> None:
        if node is None:
            return
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                self.load(node.id)
            return
        if isinstance(node, ast.NamedExpr):
            self.expr(node.value)
            self.bind_value(node.target.id, node.value)
            return
        if isinstance(node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            if isinstance(node, ast.Lambda):
                for d in [*node.args.defaults, *(x for x in node.args.kw_defaults if x)]:
                    self.expr(d)
            else:
                self.expr(node.generators[0].iter)
            free, walrus = _nested_free(node)
            for name in sorted(free):
                self.load(name)
            for sub in ast.walk(node):
                if isinstance(sub, ast.Call):
                    self.call_effects(sub)
            for name in sorted(walrus):
                self.bind_value(name)
            return
        for child in ast.iter_child_nodes(node):
            self.expr(child)
        if isinstance(node, ast.Call):
            self.call_effects(node)

    def call_effects(self, call: ast.Call) -> None:
        f = call.func
        qual = self.qualname(f) or ""
        if qual in MUTATING_FUNCTIONS and call.args:
            self.mutate(_root(call.args[MUTATING_FUNCTIONS[qual]]))
        self._rng(call, qual)
        if isinstance(f, ast.Attribute):
            if not qual and _mutating_method(call):
                self.mutate(_root(f.value))
            return
        if not isinstance(f, ast.Name):
            return
        b = self.scope(f.id)
        if b is None or b.func is None:
            return
        for pos, pname in b.func.mutates:
            if 0 <= pos < len(call.args):
                self.mutate(_root(call.args[pos]))
            for k in call.keywords:
                if k.arg == pname:
                    self.mutate(_root(k.value))
        for name in sorted(b.func.assigns):
            self._maybe += 1
            self.bind_value(name)
            self._maybe -= 1

    def _rng(self, call: ast.Call, qual: str) -> None:
        """The global RNGs are state too: seeding binds it, drawing reads and mutates it."""
        for rng, prefix in ((NP_RNG, "numpy.random."), (PY_RNG, "random.")):
            if rng not in self.seeded:
                continue
            last = qual.rsplit(".", 1)[-1]
            if qual.startswith(prefix) and qual.count(".") == prefix.count(".") and last == "seed":
                self.bind(rng, Binding(VALUE, self.step))
                continue
            method = call.func.attr if isinstance(call.func, ast.Attribute) else ""
            uses = (qual.startswith(prefix) and last not in RNG_CONSUMERS["constructors"]) or (
                rng == NP_RNG and (qual.startswith("sklearn.") or (not qual and method in RNG_CONSUMERS["methods"])))
            if uses and not any(k.arg == "random_state" for k in call.keywords) and self.scope(rng) is not None:
                self.read(rng)
                if rng not in self.facts.bindings:
                    self.facts.mutated.setdefault(rng, None)

    # -- statements --------------------------------------------------------------------
    def cell(self, cell: CodeCell) -> None:
        self._cell = cell
        self.facts.config.extend(cell.config)
        self.facts.warnings.extend(cell.warnings)
        for stmt in cell.tree().body:
            if self._is_config(stmt):
                self.facts.config.append(ast.get_source_segment(cell.python, stmt) or ast.unparse(stmt))
            self.stmt(stmt, top=True)

    def _is_config(self, stmt: ast.stmt) -> bool:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            qual = self.qualname(call.func) or ""
            if not any(qual == c or qual.endswith("." + c) for c in CONFIG_CALLS):
                return False
            names = {n.id for n in ast.walk(call) if isinstance(n, ast.Name)}
            return all((b := self.scope(n)) is not None and b.kind == IMPORT for n in names)
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            base = target.value if isinstance(target, ast.Subscript) else target
            qual = self.qualname(base) or ""
            constant = not any(isinstance(n, ast.Name) for n in ast.walk(stmt.value))
            return constant and any(t in qual for t in CONFIG_TARGETS)
        return False

    def stmt(self, s: ast.stmt, top: bool = False) -> None:
        if isinstance(s, ast.Assign):
            self.expr(s.value)
            for t in s.targets:
                self.assign_target(t, s.value)
        elif isinstance(s, ast.AugAssign):
            self.expr(s.value)
            if isinstance(s.target, ast.Name):
                self.load(s.target.id)
                prev = self.scope(s.target.id)
                self.bind(s.target.id, Binding(VALUE, self.step, unserialisable=prev.unserialisable if prev else ""))
            else:
                self.assign_target(s.target, None)
        elif isinstance(s, ast.AnnAssign):
            self.expr(s.annotation)
            if s.value is not None:
                self.expr(s.value)
                self.assign_target(s.target, s.value)
        elif isinstance(s, ast.Expr | ast.Return | ast.Raise | ast.Assert):
            for child in ast.iter_child_nodes(s):
                self.expr(child)
        elif isinstance(s, ast.Import | ast.ImportFrom):
            self.imports(s)
        elif isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self.definition(s, top)
        elif isinstance(s, ast.For | ast.AsyncFor):
            self.expr(s.iter)
            self.assign_target(s.target, None)  # definite inside the body (and, loosely, after it)
            self.branch([s.body, s.orelse], merge=False)
        elif isinstance(s, ast.While):
            self.expr(s.test)
            self.branch([s.body, s.orelse], merge=False)
        elif isinstance(s, ast.If):
            self.expr(s.test)
            self.branch([s.body, s.orelse], merge=True)
        elif isinstance(s, ast.With | ast.AsyncWith):
            for item in s.items:
                self.expr(item.context_expr)
                if item.optional_vars is not None:
                    self.assign_target(item.optional_vars, item.context_expr)
            for sub in s.body:
                self.stmt(sub)
        elif isinstance(s, ast.Try | ast.TryStar):
            self.branch([s.body, s.orelse], merge=False)
            for h in s.handlers:
                self.expr(h.type)
                if h.name:
                    self.bind_value(h.name)
                self.branch([h.body], merge=False)
                if h.name:  # Python unbinds it when the handler ends
                    self.facts.bindings.pop(h.name, None)
                    self.facts.definite.discard(h.name)
            for sub in s.finalbody:
                self.stmt(sub)
        elif isinstance(s, ast.Delete):
            for t in s.targets:
                if isinstance(t, ast.Name):
                    self.facts.bindings[t.id] = Binding(DELETED, self.step)
                    self.facts.definite.discard(t.id)
                    self.facts.mutated.pop(t.id, None)
                else:
                    self.expr(t)
                    self.mutate(_root(t))
        elif isinstance(s, ast.Match):
            self.expr(s.subject)
            for case in s.cases:
                self._maybe += 1
                for sub in ast.walk(case.pattern):
                    name = getattr(sub, "name", None)
                    if isinstance(name, str):
                        self.bind_value(name)
                    if isinstance(sub, ast.MatchValue | ast.MatchClass):
                        self.expr(sub.value if isinstance(sub, ast.MatchValue) else sub.cls)
                self._maybe -= 1
                self.expr(case.guard)
                self.branch([case.body], merge=False)
        # Global, Nonlocal, Pass, Break, Continue: nothing to record at module level

    def branch(self, blocks: list[list[ast.stmt]], merge: bool) -> None:
        """Blocks that may or may not run; with ``merge`` (if/else) a name bound in all is definite."""
        outer = set(self.facts.definite)
        inner_sets = []
        for block in blocks:
            self.facts.definite = set(outer)
            self._maybe += 1
            self._maybe_block(block)
            self._maybe -= 1
            inner_sets.append(self.facts.definite - outer)
        self.facts.definite = outer
        if merge and len(blocks) == 2 and blocks[1]:
            self.facts.definite |= inner_sets[0] & inner_sets[1]

    def _maybe_block(self, block: list[ast.stmt]) -> None:
        # Within the block, statements run in order: a name bound earlier in it is there for later reads.
        for s in block:
            depth, self._maybe = self._maybe, 0
            self.stmt(s)
            self._maybe = depth

    def assign_target(self, t: ast.AST, value: ast.AST | None) -> None:
        if isinstance(t, ast.Name):
            self.bind_value(t.id, value)
        elif isinstance(t, ast.Tuple | ast.List):
            for elt in t.elts:
                self.assign_target(elt, None)
        elif isinstance(t, ast.Starred):
            self.assign_target(t.value, None)
        elif isinstance(t, ast.Attribute | ast.Subscript):
            self.expr(t.value)
            if isinstance(t, ast.Subscript):
                self.expr(t.slice)
            self.mutate(_root(t))

    def imports(self, s: ast.Import | ast.ImportFrom) -> None:
        for alias in s.names:
            if alias.name == "*":
                self.facts.config.append(ast.unparse(s))
                self.facts.warnings.append(f"`{ast.unparse(s)}`: star import replicated into every later step")
                continue
            if isinstance(s, ast.Import):
                name = alias.asname or alias.name.split(".")[0]
                qual = alias.name if alias.asname else name
                stmt = ast.unparse(ast.Import(names=[alias]))
            else:
                name = alias.asname or alias.name
                module = "." * s.level + (s.module or "")
                qual = f"{module}.{alias.name}"
                stmt = ast.unparse(ast.ImportFrom(module=s.module, names=[alias], level=s.level))
            self.bind(name, Binding(IMPORT, self.step, statement=stmt, qualname=qual))

    def definition(self, s: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, top: bool) -> None:
        assert self._cell is not None
        info = function_info(s, self._cell.python, self._cell.index)
        for name in sorted(info.header):
            self.load(name)
        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef):
            for d in [*s.args.defaults, *(x for x in s.args.kw_defaults if x)]:
                self.expr(d)
        if not top:  # a def inside a branch or loop: handled as an opaque value
            self.bind_value(s.name)
            return
        self.bind(s.name, Binding(info.kind, self.step, func=info))


def rebind_mutated(env: dict[str, Binding], facts: StepFacts, step: int) -> None:
    """Fold a step's facts into ``env``: its bindings, and the objects it changed in place."""
    for name in facts.mutated:
        old = env.get(name)
        env[name] = Binding(VALUE, step, unserialisable=old.unserialisable if old else "")
    for name, b in facts.bindings.items():
        env[name] = replace(b, step=step)
