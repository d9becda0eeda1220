"""``mlnb monitor``'s live quality: the labels sent to ``POST /feedback`` (lines of kind ``feedback`` in the
prediction log) joined with the logged predictions by request id, per variant and model version: accuracy,
and for 0/1 labels the F1 of class 1. With a challenger (``--ab``), champion and challenger are compared on
the same period: the difference in accuracy and the two-sided p-value of a two-proportion z-test.

A label whose request is not in the log (sampled out, or older than the log) is counted as ``unknown``; a
second label for the same request as ``duplicate`` (the first one counts).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mlnb.services.monitor_log import _meta, _stamp, log_files
from mlnb.serving.feedback import quality


def live(paths: list[Path], since: float | None = None) -> dict[str, Any]:
    import orjson

    files = log_files(paths)
    labels: dict[str, list[Any]] = {}
    duplicate = 0
    for path in files:  # the labels first: they come after their predictions, maybe much later
        with open(path, "rb") as fh:
            for line in fh:
                if b'"kind":"feedback"' not in line[:200]:
                    continue
                try:
                    record = orjson.loads(line)
                except ValueError:
                    continue
                if record.get("request_id") in labels:
                    duplicate += 1
                    continue
                labels[str(record.get("request_id"))] = list(record.get("labels") or [])
    pairs: dict[tuple[str, str], list[tuple[Any, Any]]] = {}
    matched: set[str] = set()
    for path in files:
        with open(path, "rb") as fh:
            for line in fh:
                meta = _meta(line)
                if not meta or meta.get("kind") == "feedback" or meta.get("request_id") not in labels:
                    continue
                if since is not None and (_stamp(meta.get("time")) or 0) < since:
                    continue
                try:
                    predictions = orjson.loads(line).get("predictions") or []
                except ValueError:
                    continue
                request_id = str(meta["request_id"])
                matched.add(request_id)
                key = (str(meta.get("variant", "champion")), str(meta.get("model_version", "")))
                pairs.setdefault(key, []).extend(zip(predictions, labels[request_id], strict=False))
    rows = [{"variant": v, "model_version": ver, **figures(p)} for (v, ver), p in sorted(pairs.items())]
    out: dict[str, Any] = {"labels": len(labels), "matched": len(matched), "unknown": len(labels) - len(matched),
                           "duplicate": duplicate, "by_version": rows}
    champion = [r for r in rows if r["variant"] == "champion"]
    challenger = [r for r in rows if r["variant"] == "challenger"]
    if champion and challenger:
        a, b = champion[-1], challenger[-1]
        out["ab"] = {"champion_version": a["model_version"], "challenger_version": b["model_version"],
                     "accuracy_difference": round(b["accuracy"] - a["accuracy"], 6),
                     "p_value": two_proportion_p(a["correct"], a["labelled_rows"], b["correct"], b["labelled_rows"])}
    return out


def figures(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    found = quality(pairs)
    return {"labelled_rows": int(found["labelled_rows"]), "correct": int(found["correct"]),
            **{k: round(v, 6) for k, v in found.items() if k in ("accuracy", "f1")}}


def two_proportion_p(x1: int, n1: int, x2: int, n2: int) -> float | None:
    """Two-sided p-value that two success rates differ (pooled z-test); None when it cannot be computed."""
    if not n1 or not n2:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (x2 / n2 - x1 / n1) / se
    return math.erfc(abs(z) / math.sqrt(2))
