"""``mlnb add NOTEBOOK``: make an existing notebook a task of the current ``pipeline.yaml``.

* a ``parameters`` cell is inserted if missing (or given ``upstream``/``product`` lines);
* its product is declared: the executed notebook, plus every file it writes through a
  literal path (``df.to_csv("out/clean.csv")``, ``plt.savefig(...)``, ``joblib.dump(m, ...)``);
* ``upstream`` is inferred from the literal paths it reads (``pd.read_parquet(...)``) that
  are another task's product; a path claimed by no task is raw input and ignored.

The task runs in the notebook's own folder (``local_execution``), as it does when opened in
Jupyter, so its relative paths mean the same in both places.
"""

from __future__ import annotations

import ast
import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlnb.convert.cells import code_cell
from mlnb.core.io import atomic_write, inside
from mlnb.core.notebooks import PARAMETERS_TAG, cell_source, read_notebook
from mlnb.core.yamlio import read_yaml
from mlnb.errors import ConvertError, SpecError

WRITERS = {"to_csv": 0, "to_parquet": 0, "to_pickle": 0, "to_json": 0, "to_excel": 0, "to_feather": 0,
           "to_hdf": 0, "savefig": 0, "save": 0, "savez": 0, "savetxt": 0, "dump": 1, "write_text": -1,
           "write_bytes": -1}
READERS = ("read_csv", "read_parquet", "read_pickle", "read_json", "read_excel", "read_feather", "read_hdf",
           "load", "loadtxt", "genfromtxt", "read_text", "read_bytes", "imread", "open")


@dataclass
class AddResult:
    name: str
    upstream: list[str]
    products: dict[str, str]
    notes: list[str] = field(default_factory=list)


def _path_arg(call: ast.Call, pos: int) -> str | None:
    args = list(call.args) + [k.value for k in call.keywords if k.arg in ("path", "path_or_buf", "fname", "filename")]
    node = args[pos] if 0 <= pos < len(args) else None
    if node is None and pos == -1 and isinstance(call.func, ast.Attribute):
        node = call.func.value  # Path("x").write_text(...)
        if isinstance(node, ast.Call) and node.args:
            node = node.args[0]
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def file_accesses(nb: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Literal paths the notebook (probably) reads and writes, in order of appearance."""
    reads: list[str] = []
    writes: list[str] = []
    for i, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") != "code":
            continue
        for node in ast.walk(code_cell(i, cell).tree()):
            if not isinstance(node, ast.Call):
                continue
            fname = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            mode = next((k.value.value for k in node.keywords if k.arg == "mode" and isinstance(k.value, ast.Constant)),
                        None)
            if fname == "open" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant):
                mode = node.args[1].value
            if fname == "open" and isinstance(mode, str) and any(m in mode for m in "wax"):
                path = _path_arg(node, 0)
                if path:
                    writes.append(path)
            elif fname in WRITERS:
                path = _path_arg(node, WRITERS[fname])
                if path:
                    writes.append(path)
            elif fname in READERS:
                path = _path_arg(node, 0 if fname not in ("read_text", "read_bytes") else -1)
                if path:
                    reads.append(path)
    return list(dict.fromkeys(reads)), list(dict.fromkeys(writes))


def _key(path: str, taken: set[str]) -> str:
    base = "".join(c if c.isalnum() else "_" for c in Path(path).stem).strip("_") or "out"
    key, n = base, 1
    while key in taken or key == "nb":
        n += 1
        key = f"{base}_{n}"
    taken.add(key)
    return key


def _parameters_source(existing: str | None, upstream: list[str]) -> str:
    lines = [] if existing is None else existing.split("\n")
    tree = ast.parse(existing or "")
    assigned = {t.id for s in tree.body if isinstance(s, ast.Assign) for t in s.targets if isinstance(t, ast.Name)}
    head = []
    if "upstream" not in assigned:
        head.append(f"upstream = {upstream!r}" if upstream else "upstream = None")
    if "product" not in assigned:
        head.append("product = None")
    return "\n".join(head + lines).strip("\n")


def add_notebook(root: Path, notebook: Path, name: str | None = None) -> AddResult:
    """Add ``notebook`` to ``root/pipeline.yaml``; rewrite its parameters cell if needed."""
    spec_path = root / "pipeline.yaml"
    notebook = inside(root, notebook.resolve(), "notebook")
    nb = read_notebook(notebook)
    raw = read_yaml(spec_path, SpecError) or {}
    tasks = raw.get("tasks") or []
    rel = notebook.relative_to(root).as_posix()
    name = name or notebook.stem
    if not name.isidentifier():
        raise ConvertError(f"{rel}: task name {name!r} is not an identifier (use --name)")
    for t in tasks:
        if Path(root / str(t.get("source", ""))).resolve() == notebook:
            raise ConvertError(f"{rel}: already a task of pipeline.yaml")
        if str(t.get("name") or Path(str(t.get("source", ""))).stem) == name:
            raise ConvertError(f"{rel}: pipeline.yaml already has a task named {name!r} (use --name)")
    owners: dict[Path, str] = {}
    for t in tasks:
        tname = str(t.get("name") or Path(str(t["source"])).stem)
        product = t.get("product")
        for p in (product.values() if isinstance(product, dict) else [product]):
            if isinstance(p, str) and "{{" not in p:
                owners[(root / p).resolve()] = tname
    reads, writes = file_accesses(nb)
    here = notebook.parent
    upstream = sorted({owners[(here / r).resolve()] for r in reads if (here / r).resolve() in owners})
    products: dict[str, str] = {"nb": f"products/{name}/{name}.ipynb"}
    taken: set[str] = set()
    notes = []
    for w in writes:
        target = (here / w).resolve()
        if root not in target.parents:
            notes.append(f"{w}: written outside the project; not declared as a product")
            continue
        if target in owners:
            raise ConvertError(f"{rel}: writes {w!r}, already a product of task {owners[target]!r}")
        products[_key(w, taken)] = target.relative_to(root).as_posix()
    new_nb = copy.deepcopy(nb)
    cells = new_nb["cells"]
    params = [c for c in cells if PARAMETERS_TAG in (c.get("metadata", {}).get("tags") or [])]
    if params:
        params[0]["source"] = _parameters_source(cell_source(params[0]), upstream)
    else:
        first_code = next((i for i, c in enumerate(cells) if c.get("cell_type") == "code"), len(cells))
        cells.insert(first_code, {"cell_type": "code", "id": "mlnb-parameters", "metadata": {"tags": [PARAMETERS_TAG]},
                                  "execution_count": None, "outputs": [],
                                  "source": _parameters_source(None, upstream)})
        notes.append("inserted a parameters cell")
    task = {"source": rel, "product": products, "local_execution": True}
    entry = yaml.safe_dump([task], sort_keys=False, default_flow_style=False)
    text = spec_path.read_text(encoding="utf-8")
    if list(raw)[-1:] == ["tasks"] and text.rstrip().splitlines()[-1].startswith((" ", "-")):
        indent = next((ln[: len(ln) - len(ln.lstrip())] for ln in text.splitlines() if ln.lstrip().startswith("- ")),
                      "  ")
        new_text = text.rstrip("\n") + "\n\n" + "".join(indent + ln + "\n" if ln else "\n"
                                                        for ln in entry.splitlines())
    else:
        raw["tasks"] = [*tasks, task]
        new_text = yaml.safe_dump(raw, sort_keys=False)
        notes.append("pipeline.yaml was rewritten (its comments were not kept)")
    if yaml.safe_load(new_text)["tasks"][-1] != task:
        raise ConvertError(f"{spec_path}: could not append the task safely; add it by hand")
    with atomic_write(notebook, encoding="utf-8") as fh:
        json.dump(new_nb, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    with atomic_write(spec_path, encoding="utf-8") as fh:
        fh.write(new_text)
    return AddResult(name, upstream, products, notes)
