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
from dataclasses import dataclass, field, replace

from mlnb.convert.cells import CodeCell
from mlnb.convert.effects import Effects
from mlnb.convert.rules import (
    unserialisable_call,
)
from mlnb.convert.symbols import (
    ACCESSORS,
    CLASS,
    DELETED,
    FUNCTION,
    IMPORT,
    PARAM,
    VALUE,
    Binding,
    FuncInfo,
    function_info,
    nested_free,
    root_name,
    scalar,
)

__all__ = ["CLASS", "FUNCTION", "IMPORT", "PARAM", "VALUE", "Analyzer", "Binding", "FuncInfo", "StepFacts"]

@dataclass
class StepFacts:
    reads: dict[str, None] = field(default_factory=dict)
    bindings: dict[str, Binding] = field(default_factory=dict)
    mutated: dict[str, None] = field(default_factory=dict)
    definite: set[str] = field(default_factory=set)
    config: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class Analyzer(Effects):
    """Def/use facts for one step; feed it the step's cells in order."""

    def __init__(self, env: dict[str, Binding], step: int, seeded: frozenset[str] = frozenset(),
                 links: dict[str, set[str]] | None = None, calls: dict[str, set[str]] | None = None) -> None:
        self.env = env  # bindings visible when the step starts
        # name -> names whose objects it may share (``a = b``, ``pipe = make_pipeline(scaler, clf)``);
        # shared across steps: changing one changes what the others see
        self.links = links if links is not None else {}
        # value -> globals that functions it holds read when called (``ops = {"f": lambda a: a + BASE}``)
        self.calls = calls if calls is not None else {}
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
        if b is None or (b.func is None and name not in self.calls):
            return
        seen = _seen if _seen is not None else set()
        if name in seen:
            return
        seen.add(name)
        needs = set(self.calls.get(name, ()))
        if b.func is not None:
            needs |= b.func.deferred
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

    def bind_value(self, name: str, value: ast.AST | None = None, holder: ast.AST | None = None) -> None:
        """Bind ``name`` to ``value``'s result, or to a part of ``holder`` (unpacking, ``for`` targets)."""
        self.bind(name, Binding(VALUE, self.step, unserialisable=self._why_not(value), scalar=scalar(value)))
        for others in self.links.values():
            others.discard(name)
        self.links.pop(name, None)
        self.calls.pop(name, None)
        self._note_calls(name, value)
        shared = {n for n in self._held(value) | self._held(holder) if n != name}
        if shared:
            self.links[name] = shared
            for n in shared:
                self.links.setdefault(n, set()).add(name)

    def _note_calls(self, name: str | None, value: ast.AST | None) -> None:
        """Record the globals read by lambdas and notebook functions that ``value`` holds."""
        if name is None or value is None:
            return
        needs: set[str] = set()
        called = {id(n.func) for n in ast.walk(value) if isinstance(n, ast.Call)}  # f(x) holds f's result
        for node in ast.walk(value):
            if id(node) in called:
                continue
            if isinstance(node, ast.Lambda):
                needs |= nested_free(node)[0]
            elif isinstance(node, ast.Name) and (b := self.scope(node.id)) is not None and b.func is not None:
                needs |= b.func.deferred | {node.id}
        if needs:
            self.calls.setdefault(name, set()).update(needs - {name})

    def _held(self, value: ast.AST | None) -> set[str]:
        """Values an expression's result may hold by reference: ``b`` in ``b``, ``f(b)``, ``[b]``."""
        if isinstance(value, ast.Name):
            b = self.scope(value.id)
            return {value.id} if b is not None and b.kind in (VALUE, PARAM) and not b.scalar else set()
        if isinstance(value, ast.Call):
            parts: list[ast.AST] = [*value.args, *(k.value for k in value.keywords)]
            if isinstance(value.func, ast.Attribute) and value.func.attr in ACCESSORS:  # models.items()
                parts.append(value.func.value)
        elif isinstance(value, ast.Subscript | ast.Attribute):  # models["rf"], pipe.steps
            parts = [value.value]
        elif isinstance(value, ast.List | ast.Tuple | ast.Set):
            parts = list(value.elts)
        elif isinstance(value, ast.Dict):
            parts = [v for v in value.values if v is not None]
        elif isinstance(value, ast.Starred):
            parts = [value.value]
        else:
            return set()
        return {n for p in parts for n in self._held(p)}

    def mutate(self, name: str | None) -> None:
        if name is None:
            return
        todo, seen = [name], set()
        while todo:  # an object changed in place changes every name that shares it
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            todo += sorted(self.links.get(n, ()))
            b = self.scope(n)
            if b is None or b.kind not in (VALUE, PARAM):
                continue
            self.read(n)
            if n not in self.facts.bindings:  # bound here: exported anyway
                self.facts.mutated.setdefault(n, None)

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
            free, walrus = nested_free(node)
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

    # -- statements --------------------------------------------------------------------
    def cell(self, cell: CodeCell) -> None:
        self._cell = cell
        self.facts.config.extend(cell.config)
        self.facts.warnings.extend(cell.warnings)
        for stmt in cell.tree().body:
            if self._is_config(stmt):
                self.facts.config.append(ast.get_source_segment(cell.python, stmt) or ast.unparse(stmt))
            self.stmt(stmt, top=True)

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
            self.assign_target(s.target, None, s.iter)  # definite inside the body (and, loosely, after it)
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
                    self.read(t.id)  # `del x` needs x: bring it in from an earlier step
                    self.facts.bindings[t.id] = Binding(DELETED, self.step)
                    self.facts.definite.discard(t.id)
                    self.facts.mutated.pop(t.id, None)
                else:
                    self.expr(t)
                    self.mutate(root_name(t))
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

    def assign_target(self, t: ast.AST, value: ast.AST | None, holder: ast.AST | None = None) -> None:
        if isinstance(t, ast.Name):
            self.bind_value(t.id, value, holder)
        elif isinstance(t, ast.Tuple | ast.List):
            for elt in t.elts:
                self.assign_target(elt, None, value if value is not None else holder)
        elif isinstance(t, ast.Starred):
            self.assign_target(t.value, None, value if value is not None else holder)
        elif isinstance(t, ast.Attribute | ast.Subscript):
            self.expr(t.value)
            if isinstance(t, ast.Subscript):
                self.expr(t.slice)
            self.mutate(root_name(t))
            self._note_calls(root_name(t), value)

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
