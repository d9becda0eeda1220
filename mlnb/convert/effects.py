"""What statements do beyond binding names: calls that change objects, draw from a seeded
global RNG, or set the session up (``pd.set_option``). Mixed into :class:`~mlnb.convert.scope.Analyzer`,
which provides ``scope``/``read``/``bind``/``mutate``/``qualname`` and ``facts``.
"""

from __future__ import annotations

import ast
from typing import Any

from mlnb.convert.rules import CONFIG_CALLS, CONFIG_TARGETS, MUTATING_FUNCTIONS, NP_RNG, PY_RNG, RNG_CONSUMERS
from mlnb.convert.symbols import IMPORT, VALUE, Binding, FuncInfo, mutating_method, root_name


class Effects:
    """Call and statement effects; relies on the Analyzer's name-tracking methods."""

    facts: Any
    seeded: frozenset[str]
    step: int
    _maybe: int

    def call_effects(self, call: ast.Call) -> None:
        f = call.func
        qual = self.qualname(f) or ""
        if qual in MUTATING_FUNCTIONS and call.args:
            self.mutate(root_name(call.args[MUTATING_FUNCTIONS[qual]]))
        self._rng(call, qual)
        if isinstance(f, ast.Attribute):
            if not qual and mutating_method(call):
                self.mutate(root_name(f.value))
            return
        if not isinstance(f, ast.Name):
            return
        b = self.scope(f.id)
        if b is None or b.func is None:
            return
        for pos, pname in b.func.mutates:
            if 0 <= pos < len(call.args):
                self.mutate(root_name(call.args[pos]))
            for k in call.keywords:
                if k.arg == pname:
                    self.mutate(root_name(k.value))
        self.body_effects(b.func, set())
        for name in sorted(b.func.assigns):
            self._maybe += 1
            self.bind_value(name)
            self._maybe -= 1

    def _rng(self, call: ast.Call, qual: str) -> None:
        """The global RNGs are state too: seeding binds it, drawing reads and mutates it."""
        if any(k.arg == "random_state" for k in call.keywords):
            return
        for rng, prefix in ((NP_RNG, "numpy.random."), (PY_RNG, "random.")):
            if rng in self.seeded and qual.startswith(prefix) and qual.count(".") == prefix.count(".") and \
                    qual.endswith(".seed"):
                self.bind(rng, Binding(VALUE, self.step))
                return
        self._draw(qual, call.func.attr if isinstance(call.func, ast.Attribute) else "")

    def _draw(self, qual: str, method: str) -> None:
        """Record a call that may draw from a seeded global RNG."""
        last = qual.rsplit(".", 1)[-1]
        for rng, prefix in ((NP_RNG, "numpy.random."), (PY_RNG, "random.")):
            if rng not in self.seeded or self.scope(rng) is None:
                continue
            uses = (qual.startswith(prefix) and last not in RNG_CONSUMERS["constructors"]) or (
                rng == NP_RNG and (qual.startswith("sklearn.") or (not qual and method in RNG_CONSUMERS["methods"])))
            if uses:
                self.read(rng)
                if rng not in self.facts.bindings:
                    self.facts.mutated.setdefault(rng, None)

    def body_effects(self, func: FuncInfo, seen: set[str]) -> None:
        """What calling a notebook function does to globals: in-place changes and RNG draws."""
        if func.name in seen:
            return
        seen.add(func.name)
        for name in sorted(func.touches):
            self.mutate(name)
        for called in func.calls:
            root, _, rest = called.partition(".")
            b = self.scope(root)
            if b is not None and b.kind == IMPORT:
                self._draw(b.qualname + ("." + rest if rest else ""), "")
            elif b is not None and b.func is not None and not rest:
                self.body_effects(b.func, seen)
            elif rest:
                self._draw("", called.rsplit(".", 1)[-1])

    def _is_config(self, stmt: ast.stmt) -> bool:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            qual = self.qualname(call.func) or ""
            if not any(qual == c or qual.endswith("." + c) for c in CONFIG_CALLS):
                return False
            names = {n.id for n in ast.walk(call) if isinstance(n, ast.Name)}
            return all((b := self.scope(n)) is None or b.kind == IMPORT for n in names)  # builtins are fine
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target = stmt.targets[0]
            base = target.value if isinstance(target, ast.Subscript) else target
            qual = self.qualname(base) or ""
            constant = not any(isinstance(n, ast.Name) for n in ast.walk(stmt.value))
            return constant and any(t in qual for t in CONFIG_TARGETS)
        return False
