"""Static checks of ``pipeline.yaml`` (pure: no Ploomber import, nothing executed).

Ploomber reports many spec mistakes late, with long tracebacks, or not at all. We
check the spec up front and fail with one line naming the file and key: unknown
keys, missing or duplicate names, duplicate products, products outside the
project, notebooks that are not valid JSON or lack a ``parameters`` cell, upstream
names that are not tasks, dependency cycles, params the notebook does not declare,
and params whose type differs from the notebook's default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.core.config import PLACEHOLDER, check_templates, compatible, lookup, type_name
from mlnb.core.io import inside
from mlnb.core.notebooks import parse_task_notebook
from mlnb.core.yamlio import read_yaml
from mlnb.errors import SpecError

TOP_KEYS = {"meta", "tasks", "executor", "clients", "serializer", "unserializer", "on_render", "on_finish",
            "on_failure", "config"}
TASK_KEYS = {"source", "product", "name", "params", "on_render", "on_finish", "on_failure", "static_analysis",
             "nb_product_key", "executor", "executor_params", "papermill_params", "kernelspec_name",
             "local_execution", "check_if_kernel_installed", "nbconvert_export_kwargs", "debug_mode", "class",
             "product_class", "ext_in", "client", "serializer", "unserializer"}
_PLACEHOLDER = PLACEHOLDER
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    source: Path
    products: dict[str, Path]  # key -> absolute path ("nb" is the executed notebook)
    params: dict[str, Any]
    upstream: tuple[str, ...]
    env_keys: tuple[str, ...]  # dotted env.yaml keys the task's params use

    @property
    def notebook_product(self) -> Path:
        return self.products.get("nb") or next(p for p in self.products.values() if p.suffix == ".ipynb")


@dataclass(frozen=True)
class PipelineSpec:
    path: Path
    root: Path
    tasks: dict[str, TaskSpec]  # in topological order

    def downstream(self, name: str) -> list[str]:
        out, frontier = [], [name]
        while frontier:
            cur = frontier.pop()
            for t in self.tasks.values():
                if cur in t.upstream and t.name not in out:
                    out.append(t.name)
                    frontier.append(t.name)
        return [t for t in self.tasks if t in out]


def render(value: Any, env: dict[str, Any], where: str, keys: list[str]) -> Any:
    """Expand ``{{a.b}}`` placeholders from env; a lone placeholder keeps the env value's type."""
    if isinstance(value, dict):
        return {k: render(v, env, f"{where}.{k}", keys) for k, v in value.items()}
    if not isinstance(value, str):
        return value

    def get(key: str) -> Any:
        if key in ("root", "here", "cwd", "user", "now", "git", "git_hash", "env"):
            raise SpecError(f"{where}: placeholder {{{{{key}}}}} is not supported by mlnb; use a literal path")
        try:
            found = lookup(env, key)
        except KeyError:
            raise SpecError(f"{where}: placeholder {{{{{key}}}}} has no value in env.yaml") from None
        keys.append(key)
        return found

    whole = _PLACEHOLDER.fullmatch(value.strip())
    if whole:
        return get(whole.group(1))
    return _PLACEHOLDER.sub(lambda m: str(get(m.group(1))), value)


def load_spec(path: str | Path, env: dict[str, Any]) -> PipelineSpec:
    """Parse and check ``pipeline.yaml`` against the notebooks and ``env``."""
    path = Path(path).resolve()
    root = path.parent
    raw = read_yaml(path, SpecError)
    name = path.name
    check_templates(raw, name, SpecError)  # before anything renders
    if not isinstance(raw, dict):
        raise SpecError(f"{name}: top level must be a mapping with a 'tasks' list")
    for key in raw:
        if key not in TOP_KEYS:
            raise SpecError(f"{name}: unknown top-level key {key!r}")
    if not isinstance(raw.get("tasks"), list) or not raw["tasks"]:
        raise SpecError(f"{name}: 'tasks' must be a non-empty list")

    tasks: dict[str, TaskSpec] = {}
    owners: dict[Path, str] = {}
    for i, t in enumerate(raw["tasks"]):
        where = f"{name}: tasks[{i}]"
        if not isinstance(t, dict):
            raise SpecError(f"{where}: must be a mapping with source and product")
        for key in t:
            if key not in TASK_KEYS:
                raise SpecError(f"{where}: unknown key {key!r}")
        if "source" not in t or "product" not in t:
            raise SpecError(f"{where}: needs both 'source' and 'product'")
        source = inside(root, str(t["source"]), f"{where}.source")
        if source.suffix != ".ipynb":
            raise SpecError(f"{where}.source: {t['source']!r}: mlnb tasks are .ipynb notebooks")
        if not source.is_file():
            raise SpecError(f"{where}.source: {t['source']!r} does not exist")
        tname = str(t.get("name") or source.stem)
        where = f"{name}: tasks[{tname}]"
        if not _NAME.match(tname):
            raise SpecError(f"{where}.name: {tname!r} is not a valid task name")
        if tname in tasks:
            raise SpecError(f"{where}: duplicate task name {tname!r}")
        env_keys: list[str] = []
        product = render(t["product"], env, f"{where}.product", env_keys)
        product = product if isinstance(product, dict) else {"nb": product}
        products: dict[str, Path] = {}
        for key, p in product.items():
            abs_p = inside(root, str(p), f"{where}.product.{key}")
            if abs_p in owners:
                raise SpecError(f"{where}.product.{key}: {p!r} is also a product of task {owners[abs_p]!r}")
            owners[abs_p] = tname
            products[str(key)] = abs_p
        if not any(p.suffix == ".ipynb" for p in products.values()):
            raise SpecError(f"{where}.product: one product must be the executed notebook (.ipynb)")
        params = render(t.get("params") or {}, env, f"{where}.params", env_keys)
        if not isinstance(params, dict):
            raise SpecError(f"{where}.params: must be a mapping")
        nb = parse_task_notebook(source)
        for pname, value in params.items():
            if pname not in nb.defaults:
                raise SpecError(f"{where}.params.{pname}: not declared in the parameters cell of {t['source']}")
            default = nb.defaults[pname]
            if not compatible(default, value):
                raise SpecError(f"{where}.params.{pname}: expected {type_name(default)} (default {default!r} in "
                                f"{t['source']}), got {type_name(value)} {value!r}")
        tasks[tname] = TaskSpec(tname, source, products, params, nb.upstream, tuple(sorted(set(env_keys))))

    for t in tasks.values():
        for up in t.upstream:
            if up not in tasks:
                raise SpecError(f"{name}: tasks[{t.name}]: upstream {up!r} (declared in "
                                f"{t.source.relative_to(root)}) is not a task in {name}")
    return PipelineSpec(path, root, {n: tasks[n] for n in _toposort(tasks, name)})


def _toposort(tasks: dict[str, TaskSpec], name: str) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = [*stack[stack.index(n):], n]
            raise SpecError(f"{name}: dependency cycle: {' -> '.join(cycle)}")
        state[n] = 1
        for up in tasks[n].upstream:
            visit(up, [*stack, n])
        state[n] = 2
        order.append(n)

    for n in tasks:
        visit(n, [])
    return order
