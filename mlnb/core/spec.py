"""Static checks of ``pipeline.yaml`` (pure: no Ploomber import, nothing executed).

Ploomber reports many spec mistakes late, with long tracebacks, or not at all. We
check the spec up front and fail with one line naming the file and key: unknown
keys, missing or duplicate names, duplicate products, products outside the
project, notebooks that are not valid JSON or lack a ``parameters`` cell, upstream
names that are not tasks, dependency cycles, and params whose type differs from the
notebook's default. Every spec Ploomber 0.23 accepts passes (these checks add, never
subtract): notebooks, jupytext scripts, functions by dotted path, other sources left to
Ploomber, ``grid`` tasks (expanded as Ploomber names them, :mod:`mlnb.core.grid`), its
built-in placeholders; where Ploomber only warns (a param the parameters cell does not
declare) the spec carries a warning (:attr:`PipelineSpec.warnings`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from mlnb.core import grid as grids
from mlnb.core import sources
from mlnb.core.config import PLACEHOLDER, check_templates, compatible, lookup, type_name
from mlnb.core.io import inside
from mlnb.core.notebooks import TaskNotebook, parse_task_notebook
from mlnb.core.yamlio import read_yaml
from mlnb.errors import SpecError

TOP_KEYS = {"meta", "location", "tasks", "executor", "clients", "serializer", "unserializer", "on_render", "on_finish",
            "on_failure", "config"}
TASK_KEYS = {"source", "product", "name", "params", "on_render", "on_finish", "on_failure", "static_analysis",
             "nb_product_key", "executor", "executor_params", "papermill_params", "kernelspec_name",
             "local_execution", "check_if_kernel_installed", "nbconvert_export_kwargs", "debug_mode", "class",
             "product_class", "ext_in", "client", "serializer", "unserializer", "grid", "upstream", "chunksize",
             "nbconvert_exporter_name", "io_handler", "product_client", "exporter_name", "hot_reload",
             "to_sql_kwargs", "columns", "bucket", "client_kwargs", "upload_file_kwargs"}  # SQL/upload task classes
_PLACEHOLDER = PLACEHOLDER
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")  # Ploomber takes a file stem as it is: 1-get, load.v2


@dataclass(frozen=True)
class TaskSpec:
    name: str
    source: Path
    products: dict[str, Path]  # key -> absolute path ("nb" is the executed notebook)
    params: dict[str, Any]
    upstream: tuple[str, ...]
    env_keys: tuple[str, ...]  # dotted env.yaml keys the task's params use
    kind: str = sources.NOTEBOOK  # notebook | script | function | other (see mlnb.core.sources)

    @property
    def what(self) -> str:
        """How one-line messages name the task's kind: "a SQL task", "a function task", ..."""
        if self.kind == sources.OTHER:
            return "a SQL task" if self.source.suffix.lower() == ".sql" else "a non-notebook task"
        return f"a {self.kind} task"

    @property
    def notebook_product(self) -> Path:
        """The executed notebook (else the task's first product: a render, a function's output; else, for a
        task whose products are not files such as a SQL relation, its source)."""
        return (self.products.get("nb") or next((p for p in self.products.values() if p.suffix == ".ipynb"), None)
                or next(iter(self.products.values()), self.source))


@dataclass(frozen=True)
class PipelineSpec:
    path: Path
    root: Path
    tasks: dict[str, TaskSpec]  # in topological order
    warnings: tuple[str, ...] = field(default=())  # what Ploomber would only warn about, one line each
    factory: str | None = None  # a Python factory's dotted path: the tasks were read from the DAG it returns
    files: str | None = None  # directory mode: the folder or glob the tasks were made from (load_files_spec)
    entry_point: str | None = None  # --entry-point (or ENTRY_POINT) it was loaded by; None: the default lookup
    hooks: bool = False  # hooks that run even when every task is up to date (the DAG's on_render/on_finish,
    # a task's on_render), as under `ploomber build`: the build cannot skip Ploomber then

    def downstream(self, name: str) -> list[str]:
        out, frontier = [], [name]
        while frontier:
            cur = frontier.pop()
            for t in self.tasks.values():
                if cur in t.upstream and t.name not in out:
                    out.append(t.name)
                    frontier.append(t.name)
        return [t for t in self.tasks if t in out]


def render(value: Any, env: dict[str, Any], where: str, keys: list[str],
           builtins: dict[str, Callable[[], str]] | None = None) -> Any:
    """Expand ``{{a.b}}`` placeholders from env, then Ploomber's built-ins (``{{root}}``, ``{{here}}``,
    ``{{cwd}}``, ``{{user}}``, ``{{now}}``, ``{{git}}``, ``{{git_hash}}``: a key of env.yaml wins, as in
    Ploomber); a lone placeholder keeps the env value's type. Nothing else of Jinja is evaluated."""
    if isinstance(value, dict):
        return {k: render(v, env, f"{where}.{k}", keys, builtins) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, env, f"{where}[{i}]", keys, builtins) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def get(key: str) -> Any:
        try:
            found = lookup(env, key)
        except KeyError:
            if builtins is not None and key in builtins:
                try:
                    return builtins[key]()
                except (KeyError, OSError):
                    raise SpecError(f"{where}: placeholder {{{{{key}}}}}: not in a git repository") from None
            raise SpecError(f"{where}: placeholder {{{{{key}}}}} has no value in env.yaml") from None
        keys.append(key)
        return found

    whole = _PLACEHOLDER.fullmatch(value.strip())
    if whole:
        return get(whole.group(1))
    return _PLACEHOLDER.sub(lambda m: str(get(m.group(1))), value)


def location_of(path: Path) -> str | None:
    """The factory a spec names with ``location:`` instead of ``tasks:`` (None: it lists its tasks)."""
    try:
        if "location" not in path.read_text(encoding="utf-8", errors="replace"):
            return None  # the word is nowhere: no second parse of the spec on every command
    except OSError:
        pass  # read_yaml says what is wrong with the file, in one line
    raw = read_yaml(path, SpecError)
    found = raw.get("location") if isinstance(raw, dict) else None
    if found is not None and not isinstance(found, str):
        raise SpecError(f"{path.name}: location: expected a dotted path (pkg.module.make_dag), got {found!r}")
    return found


def load_spec(path: str | Path, env: dict[str, Any], root: Path | None = None) -> PipelineSpec:
    """Parse and check the spec at ``path`` against the notebooks and ``env``. Task sources are relative
    to the spec's folder, products to ``root`` (the project root; default: the spec's folder)."""
    path = Path(path).resolve()
    raw = read_yaml(path, SpecError)
    check_templates(raw, path.name, SpecError)  # before anything renders
    return _checked(raw, path, env, (root or path.parent).resolve())


# Ploomber's directory mode: the sources it makes tasks of (those NotebookRunner runs)
DIRECTORY_SUFFIXES = (".py", ".ipynb", ".R", ".Rmd", ".r")


def load_files_spec(pattern: str, root: Path) -> PipelineSpec:
    """Ploomber's directory mode (``--entry-point .``, ``--entry-point 'tasks/*.py'``): a task per script or
    notebook, named after its file, its product and upstream read from its parameters cell (Ploomber's
    ``meta.extract_product`` and ``extract_upstream``); env.yaml does not apply, as in Ploomber."""
    root = root.resolve()
    folder = root / pattern
    found = [f for ext in DIRECTORY_SUFFIXES for f in sorted(folder.glob(f"*{ext}"))] if folder.is_dir() \
        else [f for f in sorted(root.glob(pattern)) if f.is_file()]
    if not found:
        raise SpecError(f"--entry-point {pattern!r}: no scripts or notebooks ({', '.join(DIRECTORY_SUFFIXES)}) there")
    odd = [f.name for f in found if f.suffix not in DIRECTORY_SUFFIXES]
    if odd:
        raise SpecError(f"--entry-point {pattern!r}: {odd[0]} is not a script or notebook "
                        f"(directory mode takes {', '.join(DIRECTORY_SUFFIXES)})")
    raw = {"tasks": [{"source": str(f)} for f in found], "meta": {"extract_product": True, "extract_upstream": True}}
    return replace(_checked(raw, root / pattern, {}, root), files=pattern)


def _meta(name: str, meta: Any) -> dict[str, Any]:
    """The spec's ``meta`` section with Ploomber's defaults (extract_upstream on, extract_product off)."""
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise SpecError(f"{name}: meta: expected a mapping, got {meta!r}")
    out = {"extract_upstream": True, "extract_product": False, **meta}
    for key in ("extract_upstream", "extract_product"):
        if not isinstance(out[key], bool):
            raise SpecError(f"{name}: meta.{key}: expected true or false, got {out[key]!r}")
    return out


def _checked(raw: Any, path: Path, env: dict[str, Any], root: Path) -> PipelineSpec:
    here = path.parent
    name = path.name
    if not isinstance(raw, dict):
        raise SpecError(f"{name}: top level must be a mapping with a 'tasks' list")
    for key in raw:
        if key not in TOP_KEYS:
            raise SpecError(f"{name}: unknown top-level key {key!r}")
    meta = _meta(name, raw.get("meta"))
    raw_tasks = [*(raw.get("tasks") or []), *_imported_tasks(path, meta)] \
        if isinstance(raw.get("tasks") or [], list) else raw.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise SpecError(f"{name}: 'tasks' must be a non-empty list")

    tasks: dict[str, TaskSpec] = {}
    owners: dict[Path, str] = {}
    warned: list[str] = []
    builtins = sources.builtin_placeholders(root, here)
    loader = sources.loader_dirs(root, raw.get("meta"), name)
    for i, t in enumerate(raw_tasks):
        where = f"{name}: tasks[{i}]"
        if not isinstance(t, dict):
            raise SpecError(f"{where}: must be a mapping with source and product")
        for key in t:
            if key not in TASK_KEYS:
                raise SpecError(f"{where}: unknown key {key!r}")
        if "source" not in t:
            raise SpecError(f"{where}: needs 'source'")
        kind = sources.kind_of(here, str(t["source"]))
        nb: TaskNotebook | None = None
        if kind == sources.FUNCTION:
            module, upstream = sources.resolve_function(here, str(t["source"]))
            source = module or path  # a function of an installed package: the spec stands for its code
            default_name = str(t["source"]).rpartition(".")[2]
        else:
            found = sources.from_loader(loader, str(t["source"]))  # Ploomber looks there first
            source = inside(root, found or here / str(t["source"]), f"{where}.source")
            if not source.is_file():
                raise SpecError(f"{where}.source: {t['source']!r} does not exist")
            default_name = source.stem
            upstream = sources.template_upstream(source)  # e.g. {{upstream['name']}} in a .sql file
            if kind in (sources.NOTEBOOK, sources.SCRIPT):
                nb = parse_task_notebook(source)
                upstream = nb.upstream
        if not meta["extract_upstream"]:  # Ploomber then reads the task's own `upstream:` key
            upstream = _declared_upstream(t.get("upstream"), f"{where}.upstream")
        if "product" in t and meta["extract_product"]:
            raise SpecError(f"{where}.product: with meta.extract_product the product is read from the "
                            f"parameters cell of {t['source']} (Ploomber refuses both)")
        if "product" not in t and not (meta["extract_product"] and nb is not None and nb.product is not None):
            raise SpecError(f"{where}: needs 'product'" + (f" (or, with meta.extract_product, a product in the "
                                                            f"parameters cell of {t['source']})" if nb else ""))
        raw_product = t["product"] if "product" in t else nb.product if nb is not None else None
        if "grid" in t and "name" not in t:
            raise SpecError(f"{where}: tasks with 'grid' must have a 'name' (as Ploomber requires)")
        base = str(t.get("name") or default_name)
        env_keys: list[str] = []
        product = render(raw_product, env, f"{where}.product", env_keys, builtins)
        params = render(t.get("params") or {}, env, f"{where}.params", env_keys, builtins)
        if not isinstance(params, dict):
            raise SpecError(f"{where}.params: must be a mapping")
        expanded = [(base, params, product)]
        if "grid" in t:
            combos = grids.combinations(render(t["grid"], env, f"{where}.grid", env_keys, builtins), params, where)
            expanded = [(grids.task_name(base, k, p, where), p, _grid_product(product, k, p, f"{where}.product"))
                         for k, p in enumerate(combos)]
        for tname, task_params, task_product in expanded:
            tasks[tname] = _task(root, name, tname, t, kind, source, nb, upstream, task_params, task_product,
                                 tuple(sorted(set(env_keys))), tasks, owners, warned)

    for t in list(tasks.values()):
        resolved: list[str] = []
        for up in t.upstream:
            matches = [n for n in tasks if fnmatch(n, up)] if "*" in up else [up] if up in tasks else []
            if not matches:
                raise SpecError(f"{name}: tasks[{t.name}]: upstream {up!r} (declared in "
                                f"{t.source.relative_to(root) if t.source.is_relative_to(root) else t.source}) "
                                f"is not a task in {name}")
            resolved += [m for m in matches if m not in resolved]
        if tuple(resolved) != t.upstream:
            tasks[t.name] = TaskSpec(t.name, t.source, t.products, t.params, tuple(resolved), t.env_keys, t.kind)
    hooks = bool(raw.get("on_render") or raw.get("on_finish") or any(t.get("on_render") for t in raw_tasks))
    return PipelineSpec(path, root, {n: tasks[n] for n in _toposort(tasks, name)}, tuple(warned), hooks=hooks)


def _declared_upstream(given: Any, where: str) -> tuple[str, ...]:
    """A task's ``upstream:`` key (with ``meta.extract_upstream: false``): None, a name or a list of names."""
    if given is None:
        return ()
    if isinstance(given, str):
        return (given,)
    if isinstance(given, list | tuple) and all(isinstance(u, str) for u in given):
        return tuple(given)
    raise SpecError(f"{where}: expected a task name or a list of task names, got {given!r}")


def _imported_tasks(path: Path, meta: dict[str, Any]) -> list[Any]:
    """The tasks of ``meta.import_tasks_from`` (a YAML list; their file sources relative to that file)."""
    given = meta.get("import_tasks_from")
    if given is None:
        return []
    where = f"{path.name}: meta.import_tasks_from"
    target = inside(path.parent, str(given), where)
    if not target.is_file():
        raise SpecError(f"{where}: {given!r} does not exist")
    imported = read_yaml(target, SpecError)
    if not isinstance(imported, list) or not imported:
        raise SpecError(f"{where}: {given!r} must be a non-empty list of tasks, got {type(imported).__name__}")
    out = []
    for task in imported:
        if isinstance(task, dict) and "source" in task and \
                sources.kind_of(target.parent, str(task["source"])) != sources.FUNCTION:
            task = {**task, "source": str(target.parent / str(task["source"]))}
        out.append(task)
    return out


def _grid_product(product: Any, index: int, params: dict[str, Any], where: str) -> Any:
    if isinstance(product, dict):
        return {k: grids.product_path(str(v), index, params, f"{where}.{k}") for k, v in product.items()}
    return grids.product_path(str(product), index, params, where)


def _task(root: Path, spec_name: str, tname: str, raw: dict[str, Any], kind: str, source: Path,
          nb: TaskNotebook | None, upstream: tuple[str, ...], params: dict[str, Any], product: Any,
          env_keys: tuple[str, ...], tasks: dict[str, TaskSpec], owners: dict[Path, str],
          warned: list[str]) -> TaskSpec:
    """One concrete task: its name, products and params checked (a grid makes several)."""
    where = f"{spec_name}: tasks[{tname}]"
    if not _NAME.match(tname):
        raise SpecError(f"{where}.name: {tname!r} is not a valid task name")
    if tname in tasks:
        raise SpecError(f"{where}: duplicate task name {tname!r}")
    if isinstance(product, list):  # a SQL relation ([schema, name, kind]): not a file
        product = {}
    product = product if isinstance(product, dict) else {"nb": product}
    products: dict[str, Path] = {}
    for key, p in product.items():
        if isinstance(p, list):
            continue
        abs_p = inside(root, str(p), f"{where}.product.{key}")
        if abs_p in owners:
            raise SpecError(f"{where}.product.{key}: {p!r} is also a product of task {owners[abs_p]!r}")
        owners[abs_p] = tname
        products[str(key)] = abs_p
    analysis = str(raw.get("static_analysis", "regular"))
    if nb is not None and analysis != "disable":
        for pname, value in params.items():
            if pname not in nb.defaults:
                message = f"{where}.params.{pname}: not declared in the parameters cell of {raw['source']}"
                if analysis == "strict":  # Ploomber's strict static analysis refuses it too
                    raise SpecError(message)
                warned.append(message + " (Ploomber warns and passes it)")
                continue
            default = nb.defaults[pname]
            if not compatible(default, value):
                raise SpecError(f"{where}.params.{pname}: expected {type_name(default)} (default {default!r} in "
                                f"{raw['source']}), got {type_name(value)} {value!r}")
    return TaskSpec(tname, source, products, params, upstream, env_keys, kind)


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
