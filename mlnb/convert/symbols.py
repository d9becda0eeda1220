"""Names and definitions: the building blocks of the converter's def/use analysis.

:class:`Binding` says how a name is bound (value, import, function, class, parameter) and
by which step; :class:`FuncInfo` describes a top-level ``def``/``class``: the globals its
header reads when it runs, the globals its body reads when called (from :mod:`symtable`),
the parameters it mutates and the globals it assigns.
"""

from __future__ import annotations

import ast
import symtable
from dataclasses import dataclass

from mlnb.convert.rules import PURE_METHODS

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
    touches: frozenset[str] = frozenset()  # globals the body changes in place (``results.append(row)``)
    calls: tuple[str, ...] = ()  # dotted names the body calls (``np.random.randint``, ``helper``)


@dataclass(frozen=True)
class Binding:
    kind: str
    step: int  # step that last bound or mutated the name (-1: the parameters cell)
    statement: str = ""  # for imports: the import statement that binds just this name
    qualname: str = ""  # for imports: the module/object path (``numpy``, ``os.path.join``)
    func: FuncInfo | None = None
    unserialisable: str = ""  # why the value cannot be handed off ("a generator", ...)
    scalar: bool = False  # a number/string/bool: nothing can share it or change it in place


def root_name(node: ast.AST) -> str | None:
    """``df`` for ``df``, ``df.loc[...]``, ``df["a"].b`` (not through calls)."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def target_names(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Tuple | ast.List):
        return [n for elt in node.elts for n in target_names(elt)]
    if isinstance(node, ast.Starred):
        return target_names(node.value)
    return []


def nested_free(node: ast.AST) -> tuple[set[str], set[str]]:
    """Free names read in a lambda/comprehension, and names its walruses bind outside."""
    local: set[str] = set()
    walrus: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Lambda):
            a = sub.args
            local.update(x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg] if x)
        elif isinstance(sub, ast.comprehension):
            local.update(target_names(sub.target))
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
    hit = _changed(node, params)
    return tuple((positional.index(p) if p in positional else -1, p) for p in sorted(hit))


def mutating_method(call: ast.Call) -> bool:
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
    free = _table_globals(table) | declared
    return FuncInfo(node.name, FUNCTION, source, (cell, start), frozenset(header), frozenset(free),
                    _mutated_params(node), frozenset(assigns), generator, _changed(node, free), _called(node))


def dotted(node: ast.AST) -> str | None:
    """``np.random.rand`` for that attribute chain on a name; None otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return ".".join([node.id, *reversed(parts)]) if isinstance(node, ast.Name) else None


def _called(node: ast.AST) -> tuple[str, ...]:
    """Dotted names a body calls without an explicit ``random_state``."""
    found = [d for sub in ast.walk(node) if isinstance(sub, ast.Call) and (d := dotted(sub.func))
             and not any(k.arg == "random_state" for k in sub.keywords)]
    return tuple(dict.fromkeys(found))


def _changed(node: ast.AST, names: set[str]) -> frozenset[str]:
    """Which of ``names`` the body changes in place (item/attribute stores, ``del``, mutating calls)."""
    hit: set[str] = set()
    for sub in ast.walk(node):
        targets: list[ast.AST] = []
        if isinstance(sub, ast.Assign | ast.Delete):
            targets = list(sub.targets)
        elif isinstance(sub, ast.AugAssign | ast.AnnAssign):
            targets = [sub.target]
        hit |= {r for t in targets if isinstance(t, ast.Subscript | ast.Attribute) and (r := root_name(t)) in names}
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and mutating_method(sub):
            root = root_name(sub.func.value)
            if root in names:
                hit.add(root)
    return frozenset(hit)


ACCESSORS = frozenset({"items", "values", "get", "pop", "popitem", "setdefault", "__getitem__"})


def scalar(value: ast.AST | None) -> bool:
    """An expression whose result is an immutable number/string/bool (nothing can share it)."""
    if isinstance(value, ast.Constant | ast.JoinedStr | ast.Compare | ast.BoolOp):
        return True
    if isinstance(value, ast.UnaryOp):
        return scalar(value.operand)
    if isinstance(value, ast.BinOp):
        return scalar(value.left) and scalar(value.right)
    return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in (
        "len", "int", "float", "str", "bool", "round", "repr", "format", "abs", "hash", "ord", "chr")
