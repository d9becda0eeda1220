"""An HTML report of the last build: summary, metrics, gate, plots, executed notebooks."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from mlnb.adapters.ploomber.pipeline import FAILED_DIR
from mlnb.core.io import atomic_write
from mlnb.core.spec import PipelineSpec
from mlnb.errors import UserInputError

_CSS = """body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .7rem;text-align:left}
.ok{color:#0a7d2c;font-weight:bold}.bad{color:#b00020;font-weight:bold}.warn{color:#8a6100;font-weight:bold}img{max-width:48%;margin:.5rem}
details{margin:.5rem 0;border:1px solid #ddd;padding:.5rem}summary{cursor:pointer;font-weight:bold}"""


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>(none)</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _notebook_html(path: Path) -> str:
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic")  # type: ignore[no-untyped-call]  # traitlets: unannotated
    body, _ = exporter.from_notebook_node(nbformat.read(str(path), as_version=4))  # type: ignore[no-untyped-call]
    return body


def _monitoring(root: Path) -> list[str]:
    """The latest ``mlnb monitor`` result (drift of what is served), when there is one."""
    from mlnb.services.monitor import last_path

    try:
        data = json.loads(last_path(root).read_text(encoding="utf-8"))
        w = data["window"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    css, word = ("bad", "DRIFT") if data.get("drift") else ("ok", "NO DRIFT")
    parts = [f'<h2>Monitoring <span class="{css}">{word}</span></h2>',
             f"<p>{html.escape(str(w.get('model_name')))} version {html.escape(str(w.get('model_version')))}: "
             f"{w.get('rows')} served rows, {html.escape(str(w.get('first', ''))[:19])} to "
             f"{html.escape(str(w.get('last', ''))[:19])}, against {html.escape(str(data['reference'].get('path')))} "
             f"({html.escape(str(data['reference'].get('source')))}); {len(data.get('drifted_features', []))} of "
             f"{len(data.get('features', {}))} features drifted (<code>mlnb monitor --html</code> draws each).</p>"]
    rows = [{"column": name, "drifted": f.get("drifted"), "psi": f.get("psi"), "wasserstein": f.get("wasserstein"),
             "ks p": f.get("ks_p", f.get("chi2_p"))} for name, f in list(data.get("features", {}).items())[:10]]
    if rows:
        parts.append(_table(rows))
    live = data.get("live") or {}
    if live.get("by_version"):
        parts += ["<h3>Live quality (labels posted to /feedback)</h3>",
                  _table([{k: r.get(k) for k in ("variant", "model_version", "labelled_rows", "accuracy", "f1")}
                          for r in live["by_version"]])]
    return parts


def build_report(spec: PipelineSpec, out: Path, root: Path) -> Path:
    """Write ``out`` (self-contained HTML: images inlined) and return it; ``root`` is the project's (where
    the build wrote ``products/last_build.json``; a spec in a subfolder resolves its products there)."""
    last = root / "products" / "last_build.json"
    if not last.exists():
        raise UserInputError(f"{last}: no build recorded yet; run `mlnb build` first")
    build = json.loads(last.read_text())
    status = '<span class="ok">succeeded</span>' if build["ok"] else '<span class="bad">failed</span>'
    summary = (f"Build {status} in {build['elapsed_s']} s; MLflow run <code>{html.escape(str(build.get('run_id')))}"
               f"</code>" if build.get("ran", True) else
               "Every task was up to date (outputs from an earlier build, e.g. pulled from DVC); nothing re-ran")
    parts = [f"<h1>mlnb build report</h1><p>{summary}</p>", "<h2>Tasks</h2>", _table(build["tasks"])]
    products = {k: p for t in spec.tasks.values() for k, p in t.products.items()}
    if products.get("metrics") and products["metrics"].exists():
        metrics = json.loads(products["metrics"].read_text())
        parts += ["<h2>Metrics (test split)</h2>", _table([metrics])]
    if products.get("gate") and products["gate"].exists():
        gate = json.loads(products["gate"].read_text())
        verdict = str(gate.get("verdict") or ("promotable" if gate.get("passed") else "failed"))
        css = {"promotable": "ok", "failed": "bad"}.get(verdict, "warn")
        badge = f'<span class="{css}">{html.escape(verdict.replace("_", " ").upper())}</span>'
        sig = gate.get("significance", {})
        parts += [f"<h2>Gate {badge}</h2><p>{html.escape(gate['reason'])}</p>"]
        if sig.get("bootstrap"):
            bs, metric = sig["bootstrap"], gate.get("metric", "metric")
            row = {"against": sig["reference"], f"{metric} diff (bootstrap mean)": bs["mean_diff"],
                   f"{100 * bs.get('level', 0.95):g}% interval": bs.get("ci", bs.get("ci95"))}
            if sig.get("mcnemar"):
                row["McNemar p"] = sig["mcnemar"]["p_value"]
            parts.append(_table([row]))
    images = [p for p in products.values() if p.suffix == ".png" and p.exists()]
    if images:
        parts.append("<h2>Plots</h2>")
        for img in images:
            data = base64.b64encode(img.read_bytes()).decode()
            parts.append(f'<img alt="{html.escape(img.stem)}" src="data:image/png;base64,{data}">')
    parts += _monitoring(root)
    parts.append("<h2>Executed notebooks</h2>")
    for name, task in spec.tasks.items():
        nb = task.notebook_product
        failed = spec.root / "products" / FAILED_DIR / name / nb.name
        path = nb if nb.exists() else failed if failed.exists() else None
        if path is None or path.suffix.lower() not in (".ipynb", ".html"):  # a function's or SQL task's data
            continue
        label = f"{name} ({'failed' if path == failed else 'executed'})"
        body = (_notebook_html(path) if path.suffix.lower() == ".ipynb" else  # an nbconvert render, as written
                f'<iframe style="width:100%;height:32rem;border:0" srcdoc="{html.escape(path.read_text())}"></iframe>')
        parts.append(f"<details><summary>{html.escape(label)}</summary>{body}</details>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>mlnb build report</title>"
            f"<style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")
    with atomic_write(out, encoding="utf-8") as fh:
        fh.write(page)
    return out
