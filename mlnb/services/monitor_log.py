"""Reading ``mlnb serve``'s prediction log for ``mlnb monitor``: a window of one model version's rows.

The log is JSON lines (:mod:`mlnb.serving.predlog`), rotated to ``<path>.1`` (read first: it is older).
Lines that are not whole JSON records (a truncated last line, a corrupted one) are skipped and counted.
Records are kept for one variant (``champion`` unless asked) and one model version: the newest version in
the window unless one is named; records of other versions are counted and said, never mixed in. The window
is ``since`` (an ISO time, or ``30m``/``24h``/``7d`` back from now) and/or the ``last`` N rows.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlnb.errors import UserInputError

_AGO = re.compile(r"^(\d+)([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class Window:
    """The rows of the window (``inputs``: a DataFrame; ``predictions``: a numpy array) and what was left out."""

    inputs: Any
    predictions: Any
    model_name: str
    model_version: str
    variant: str
    records: int
    first: str = ""
    last: str = ""
    skipped_lines: int = 0  # not JSON records
    other_versions: dict[str, int] = field(default_factory=dict)  # version -> rows left out
    files: list[str] = field(default_factory=list)


def since_time(text: str | None, now: float | None = None) -> float | None:
    """``--since``: an ISO time (UTC unless it says) or ``30m``/``24h``/``7d`` ago; epoch seconds."""
    if not text:
        return None
    m = _AGO.match(text.strip())
    if m:
        return (now if now is not None else time.time()) - int(m[1]) * _UNIT[m[2]]
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserInputError(f"--since {text!r}: expected an ISO time (2026-12-01T00:00) or 30m, 24h, 7d") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _stamp(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def log_files(paths: list[Path]) -> list[Path]:
    """Each log with its rotated copy first; a missing log is one line."""
    out = []
    for path in paths:
        rotated = path.with_name(path.name + ".1")
        if not path.exists() and not rotated.exists():
            raise UserInputError(f"{path}: no prediction log here (mlnb serve --prediction-log {path} writes it)")
        out += [p for p in (rotated, path) if p.is_file()]
    return out


def read_window(paths: list[Path], *, since: float | None = None, last: int | None = None, variant: str = "champion",
                version: str | None = None) -> Window:
    """The window's rows (see the module doc); one line when nothing is left in it."""
    import numpy as np
    import orjson
    import pandas as pd

    files = log_files(paths)
    kept: list[dict[str, Any]] = []
    skipped = 0
    for path in files:
        with open(path, "rb") as fh:
            for line in fh:
                try:
                    record = orjson.loads(line)
                    if not isinstance(record, dict) or not isinstance(record.get("inputs"), list):
                        raise ValueError
                except ValueError:
                    skipped += 1
                    continue
                if record.get("variant", "champion") != variant:
                    continue
                if since is not None and (_stamp(record.get("time")) or 0) < since:
                    continue
                kept.append(record)
    if not kept:
        what = f" since {datetime.fromtimestamp(since, UTC).isoformat(timespec='seconds')}" if since else ""
        raise UserInputError(f"{', '.join(str(p) for p in paths)}: no {variant} predictions logged{what} "
                             f"({skipped} unreadable line(s) skipped)")
    versions: dict[str, int] = {}
    for record in kept:
        versions[str(record.get("model_version", ""))] = versions.get(str(record.get("model_version", "")), 0) + \
            int(record.get("logged_rows", len(record["inputs"])))
    chosen = version if version is not None else str(kept[-1].get("model_version", ""))
    if chosen not in versions:
        raise UserInputError(f"--version {chosen}: not in the log (versions: {', '.join(sorted(versions))})")
    records = [r for r in kept if str(r.get("model_version", "")) == chosen]
    columns = records[-1].get("columns") or []
    blocks, predictions = [], []
    for record in records:
        if record.get("columns") != columns:  # another signature: not the same model's inputs
            versions[f"{chosen} (other columns)"] = versions.get(f"{chosen} (other columns)", 0) + 1
            continue
        rows = record["inputs"]
        preds = record.get("predictions") or []
        if len(preds) != len(rows):
            skipped += 1
            continue
        blocks.append(rows)
        predictions.append(preds)
    if not blocks:
        raise UserInputError(f"no usable records of version {chosen} in the window")
    try:  # numbers only (the usual case): one float matrix, fast for millions of rows
        frame = pd.DataFrame(np.vstack([np.asarray(block, dtype=np.float64) for block in blocks]), columns=columns)
    except (TypeError, ValueError):  # strings, nulls or ragged rows: value by value
        frame = pd.DataFrame([row for block in blocks for row in block], columns=columns)
    preds = np.asarray([p for block in predictions for p in block], dtype=object)
    try:
        preds = preds.astype(float) if all(isinstance(p, int | float) for p in preds[:1000]) else preds
    except (TypeError, ValueError):
        pass
    if last is not None and len(frame) > last:
        frame, preds = frame.iloc[-last:].reset_index(drop=True), preds[-last:]
    first_used = records[0]
    return Window(frame, preds, str(records[-1].get("model_name", "")), chosen, variant, len(records),
                  str(first_used.get("time", "")), str(records[-1].get("time", "")), skipped,
                  {v: n for v, n in versions.items() if v != chosen}, [str(p) for p in files])
