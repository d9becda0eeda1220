"""``mlnb monitor --html``: one self-contained page, features sorted by drift, each with the reference's and
the window's shares drawn side by side on the reference's bins (inline SVG: no script, no network)."""

from __future__ import annotations

import html
from typing import Any

_W, _H = 320, 90


def _bars(ref: list[float], cur: list[float], labels: list[str]) -> str:
    n = max(len(ref), 1)
    top = max([*ref, *cur, 1e-9])
    slot = _W / n
    parts = [f'<svg width="{_W}" height="{_H + 14}" viewBox="0 0 {_W} {_H + 14}" role="img">']
    for i, (r, c) in enumerate(zip(ref, cur, strict=False)):
        x = i * slot
        for j, (share, colour) in enumerate(((r, "#9aa5b1"), (c, "#d9480f"))):
            h = share / top * _H
            parts.append(f'<rect x="{x + 1 + j * slot / 2:.1f}" y="{_H - h:.1f}" width="{max(slot / 2 - 2, 1):.1f}" '
                         f'height="{h:.1f}" fill="{colour}"><title>{html.escape(labels[i] if i < len(labels) else "")}'
                         f": {'reference' if j == 0 else 'served'} {share:.1%}</title></rect>")
    parts.append(f'<line x1="0" y1="{_H}" x2="{_W}" y2="{_H}" stroke="#333"/></svg>')
    return "".join(parts)


def _labels(entry: dict[str, Any]) -> list[str]:
    if entry.get("kind") == "categorical":
        return [str(c) for c in entry.get("categories", [])]
    edges = entry.get("edges", [])
    bounds = ["-inf", *(f"{e:.4g}" for e in edges), "+inf"]
    return [f"{bounds[i]} .. {bounds[i + 1]}" for i in range(len(bounds) - 1)]


def _scores(entry: dict[str, Any]) -> str:
    keys = ("psi", "wasserstein", "ks", "ks_p", "chi2_p")
    return ", ".join(f"{k} {entry[k]:.4g}" for k in keys if isinstance(entry.get(k), int | float))


def render(data: dict[str, Any]) -> str:
    """The page for :meth:`mlnb.services.monitor.MonitorResult.to_dict`'s ``data``."""
    w, ref = data["window"], data["reference"]
    verdict = "DRIFT" if data["drift"] else "no drift"
    rows = []
    for name, entry in [("predictions", data["prediction"]), *data["features"].items()]:
        if "reference_shares" not in entry:
            rows.append(f"<tr><td>{html.escape(name)}</td><td colspan=3>{html.escape(entry.get('note', ''))}</td></tr>")
            continue
        mark = '<b class="bad">drifted</b>' if entry.get("drifted") else "ok"
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{mark}</td><td>{html.escape(_scores(entry))}</td><td>"
                    f"{_bars(entry['reference_shares'], entry['current_shares'], _labels(entry))}</td></tr>")
    q = data["quality"]
    quality = ", ".join(f"{html.escape(n)}: {e['missing']} missing, {e.get('out_of_range', 0)} out of range"
                        for n, e in q["columns"].items()) or "no missing or out-of-range values"
    for key in ("unknown_columns", "missing_columns"):
        if q[key]:
            quality += f"; {key.replace('_', ' ')}: {html.escape(', '.join(q[key]))}"
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>mlnb monitor: {verdict}</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em}}td{{padding:4px 10px;border-bottom:1px solid #ddd;
vertical-align:middle}}.bad{{color:#c92a2a}}.key span{{display:inline-block;width:10px;height:10px;margin:0 4px}}
</style></head><body>
<h1>{html.escape(w['model_name'] or 'model')} version {html.escape(w['model_version'])}: {verdict}</h1>
<p>{w['rows']} served rows ({w['variant']}, {html.escape(w['first'])} to {html.escape(w['last'])}) against the
reference {html.escape(ref['path'])} ({html.escape(ref['source'])}). Drifted features:
{len(data['drifted_features'])} of {len(data['features'])}
({html.escape(', '.join(data['drifted_features'])) or 'none'}). Thresholds: PSI {data['thresholds']['psi']},
normalised Wasserstein {data['thresholds']['wasserstein']}.</p>
<p class="key"><span style="background:#9aa5b1"></span>reference <span style="background:#d9480f"></span>served</p>
<p>Data quality: {quality}.</p>
<table><tr><th>column</th><th>verdict</th><th>scores</th><th>shares per bin</th></tr>{''.join(rows)}</table>
</body></html>
"""
