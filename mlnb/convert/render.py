"""Write a :class:`~mlnb.convert.plan.Plan` as a Ploomber pipeline: notebooks, pipeline.yaml, env.yaml.

Each generated task notebook is laid out as::

    [markdown of the section up to its first code cell]
    parameters cell      upstream = [...]; product = None; <params it reads>
    mlnb-inputs cell     imports, session set-up and definitions it needs; mlnb_handoff.load(...)
    [the section's cells, unchanged, each tagged with its original index]
    mlnb-outputs cell    mlnb_handoff.save(...) of what later steps read

If the notebook itself uses the names ``product`` or ``upstream``, Ploomber's values are
kept as ``mlnb_product``/``mlnb_upstream`` before the notebook's code can rebind them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import nbformat
import yaml

from mlnb.convert.plan import Plan, Step

PARAMS_SECTION = "params"
INPUTS_TAG, OUTPUTS_TAG = "mlnb-inputs", "mlnb-outputs"


def _params_cell(step: Step) -> str:
    lines = ["# Parameters: Ploomber injects `upstream` and `product` (and any env.yaml params) at build time."]
    lines.append(f"upstream = {step.upstream!r}" if step.upstream else "upstream = None")
    lines.append("product = None")
    lines += [f"{k} = {v!r}" for k, v in step.params.items()]
    return "\n".join(lines)


def _names(plan: Plan) -> tuple[str, str]:
    return ("mlnb_upstream", "mlnb_product") if plan.stash else ("upstream", "product")


def _inputs_cell(plan: Plan, step: Step) -> str:
    upstream, _ = _names(plan)
    parts: list[str] = []
    if plan.stash:
        parts.append("mlnb_upstream, mlnb_product = upstream, product  # the notebook uses these names itself")
    if step.imports:
        parts.append("\n".join(step.imports))
    if step.config:
        parts.append("# session set-up from earlier steps\n" + "\n".join(step.config))
    # classes before the loads (instances unpickle against them), functions after (defaults may read inputs)
    for func in (f for f in step.carried if f.kind == "class"):
        parts.append(f"# carried from an earlier step\n{func.source}")
    if step.loads:
        lines = ["import mlnb.convert.handoff as mlnb_handoff", ""]
        for name, producer in step.loads.items():
            call = f"mlnb_handoff.load({upstream}, {producer!r}, {name!r})"
            lines.append(f"{call}  # restores the global RNG state" if name.startswith("__") else f"{name} = {call}")
        parts.append("\n".join(lines))
    for func in (f for f in step.carried if f.kind != "class"):
        parts.append(f"# carried from an earlier step\n{func.source}")
    return "\n\n".join(parts)


def _outputs_cell(plan: Plan, step: Step) -> str:
    return ("import mlnb.convert.handoff as mlnb_handoff\n\n"
            f"mlnb_handoff.save({_names(plan)[1]}, {step.name!r}, {step.exports!r}, globals())")


def _code(source: str, cid: str, tags: list[str] | None = None) -> Any:
    cell = nbformat.v4.new_code_cell(source)
    cell["id"] = cid
    if tags:
        cell["metadata"]["tags"] = tags
    return cell


def step_notebook(plan: Plan, step: Step, original: dict[str, Any]) -> Any:
    """The task notebook of ``step`` (an ``nbformat`` node)."""
    cells = original["cells"]
    nb = nbformat.v4.new_notebook()
    meta = original.get("metadata", {})
    nb["metadata"]["kernelspec"] = meta.get("kernelspec") or {
        "name": "python3", "display_name": "Python 3", "language": "python"}
    if "language_info" in meta:
        nb["metadata"]["language_info"] = {"name": meta["language_info"].get("name", "python")}
    lead = 0
    while lead < len(step.cells) and cells[step.cells[lead]].get("cell_type") != "code":
        lead += 1
    generated = [_code(_params_cell(step), "mlnb-parameters", ["parameters"])]
    inputs = _inputs_cell(plan, step)
    if inputs:
        generated.append(_code(inputs, "mlnb-inputs", [INPUTS_TAG]))
    out: list[Any] = []
    for pos, index in enumerate(step.cells):
        if pos == lead:
            out += generated
        cell = cells[index]
        kind = cell.get("cell_type")
        if kind == "code" and index not in plan.code:
            continue  # the original parameters cell: its values are now params
        new = copy.deepcopy(cell)
        new.setdefault("metadata", {})
        tags = [t for t in new["metadata"].get("tags", []) or [] if t != "parameters"]
        new["metadata"]["tags"] = tags
        if not tags:
            del new["metadata"]["tags"]
        new["metadata"]["mlnb"] = {"source_cell": index}
        new["id"] = str(cell.get("id") or f"cell-{index}")[:64]
        if kind == "code":
            new["source"] = plan.code[index].source
            new["outputs"], new["execution_count"] = [], None
        elif "attachments" in cell:
            new["attachments"] = cell["attachments"]
        out.append(nbformat.from_dict(new))
    if lead >= len(step.cells):
        out += generated
    if step.exports:
        out.append(_code(_outputs_cell(plan, step), "mlnb-outputs", [OUTPUTS_TAG]))
    nb["cells"] = out
    return nb


def pipeline_yaml(plan: Plan, source_name: str, cwd: str | None) -> str:
    tasks = []
    for step in plan.steps:
        product: dict[str, str] = {"nb": f"products/{step.name}/{step.name}.ipynb"}
        if step.exports:
            product["data"] = f"products/{step.name}/data"
        task: dict[str, Any] = {"source": f"notebooks/{step.name}.ipynb", "product": product,
                                # imports replicated for later steps look unused to pyflakes: skip its warnings
                                "static_analysis": "disable"}
        if step.params:
            task["params"] = {k: f"{{{{{PARAMS_SECTION}.{k}}}}}" for k in step.params}
        if cwd:
            task["executor_params"] = {"cwd": cwd}
        tasks.append(task)
    spec = {"meta": {"extract_upstream": True, "extract_product": False}, "executor": "serial", "tasks": tasks}
    head = (f"# Generated by `mlnb convert {source_name}`: one task per step of the original notebook.\n"
            "# Steps hand variables on through products/<step>/data (see each notebook's mlnb-outputs cell).\n"
            "# Build with `ploomber build` (or `mlnb build`) in this directory.\n")
    return head + yaml.safe_dump(spec, sort_keys=False, default_flow_style=False)


def env_yaml(plan: Plan, source_name: str) -> str:
    head = (f"# Parameters of {source_name} (its `parameters` cell), read by the steps that use them.\n"
            f"# Change one for a run: `mlnb build -p {PARAMS_SECTION}.NAME=VALUE`.\n")
    body = {PARAMS_SECTION: plan.params} if plan.params else {}
    return head + (yaml.safe_dump(body, sort_keys=False) if body else "{}\n")


def summary_rows(plan: Plan) -> list[list[str]]:
    rows = []
    for step in plan.steps:
        code = [i for i in step.cells if i in plan.code]
        span = f"{step.cells[0]}-{step.cells[-1]}" if len(step.cells) > 1 else str(step.cells[0])
        inputs = ", ".join(f"{n}<{p}" for n, p in step.loads.items() if not n.startswith("__")) or "-"
        rng = [n for n in step.loads if n.startswith("__")]
        if rng:
            inputs += " (+RNG state)"
        outputs = ", ".join(n for n in step.exports if not n.startswith("__")) or "-"
        params = ", ".join(step.params) or "-"
        rows.append([step.name, f"{span} ({len(code)} code)", inputs, outputs, params])
    return rows


def write_project(plan: Plan, original: dict[str, Any], out: Path, source_name: str, cwd: str | None) -> list[Path]:
    """Write every generated file under ``out`` (a fresh directory); return their paths."""
    written = []
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    for step in plan.steps:
        path = out / "notebooks" / f"{step.name}.ipynb"
        nbformat.validate(step_nb := step_notebook(plan, step, original))
        path.write_text(nbformat.writes(step_nb), encoding="utf-8")
        written.append(path)
    (out / "pipeline.yaml").write_text(pipeline_yaml(plan, source_name, cwd), encoding="utf-8")
    (out / "env.yaml").write_text(env_yaml(plan, source_name), encoding="utf-8")
    (out / ".gitignore").write_text("products/\n*.metadata\n", encoding="utf-8")
    return [*written, out / "pipeline.yaml", out / "env.yaml", out / ".gitignore"]
