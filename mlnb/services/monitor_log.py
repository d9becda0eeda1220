"""Reading ``mlnb serve``'s prediction log for ``mlnb monitor``: a window of one model version's rows.

The log is JSON lines (:mod:`mlnb.serving.predlog`), rotated to ``<path>.1`` (read first: it is older).
Lines that are not whole JSON records (a truncated last line, a corrupted one) are skipped and counted.
Records are kept for one variant (``champion`` unless asked) and one model version: the newest version in
the window unless one is named; records of other versions are counted and said, never mixed in. The window
is ``since`` (an ISO time, or ``30m``/``24h``/``7d`` back from now) and/or the ``last`` N rows. Only the
metadata of each line is parsed to choose the records (the JSON before its ``"columns"``); a window larger
than ``monitor.max_rows`` (100,000) is scored on evenly spaced records of it, which keeps a million-row log
within seconds (the drift scores move by less than their noise: see ``benchmarks/monitor.py``).
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
    rows_in_window: int = 0  # before sampling (see read_window's max_rows)
    feedback_lines: int = 0  # labels in the log (POST /feedback)


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


def _meta(line: bytes) -> dict[str, Any] | None:
    """A record's metadata without parsing its rows: the JSON before ``"columns"`` (the log writes its keys in
    a fixed order), else the whole line; None when the line is not a record."""
    import orjson

    at = line.find(b',"columns":', 0, 2048)
    try:
        meta = orjson.loads(line[:at] + b"}") if at > 0 else orjson.loads(line)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def _rows_of(meta: dict[str, Any]) -> int:
    value = meta.get("logged_rows")
    return value if isinstance(value, int) and value >= 0 else 1


def read_window(paths: list[Path], *, since: float | None = None, last: int | None = None, variant: str = "champion",
                version: str | None = None, max_rows: int = 100_000) -> Window:
    """The window's rows (see the module doc); one line when nothing is left in it. A window of more than
    ``max_rows`` rows is sampled: evenly spaced records over it (the whole window's size is reported)."""
    import numpy as np
    import orjson
    import pandas as pd

    files = log_files(paths)
    kept: list[tuple[dict[str, Any], bytes]] = []
    skipped = feedback = 0
    for path in files:
        with open(path, "rb") as fh:
            for line in fh:
                meta = _meta(line)
                if meta is None or (not line.endswith(b"\n") and not line.rstrip().endswith(b"}")):
                    skipped += 1
                    continue
                if meta.get("kind") == "feedback":  # labels sent to /feedback (mlnb.services.monitor_live)
                    feedback += 1
                    continue
                if meta.get("variant", "champion") != variant:
                    continue
                if since is not None and (_stamp(meta.get("time")) or 0) < since:
                    continue
                kept.append((meta, line))
    if not kept:
        what = f" since {datetime.fromtimestamp(since, UTC).isoformat(timespec='seconds')}" if since else ""
        raise UserInputError(f"{', '.join(str(p) for p in paths)}: no {variant} predictions logged{what} "
                             f"({skipped} unreadable line(s) skipped)")
    versions: dict[str, int] = {}
    for meta, _line in kept:
        key = str(meta.get("model_version", ""))
        versions[key] = versions.get(key, 0) + _rows_of(meta)
    chosen = version if version is not None else str(kept[-1][0].get("model_version", ""))
    if chosen not in versions:
        raise UserInputError(f"--version {chosen}: not in the log (versions: {', '.join(sorted(versions))})")
    mine = [(m, line) for m, line in kept if str(m.get("model_version", "")) == chosen]
    if last is not None:  # the newest records holding at least ``last`` rows
        total, cut = 0, len(mine)
        while cut > 0 and total < last:
            cut -= 1
            total += _rows_of(mine[cut][0])
        mine = mine[cut:]
    in_window = sum(_rows_of(m) for m, _line in mine)
    chosen_lines = mine
    if in_window > max_rows:  # evenly spaced records, so the sample covers the whole window
        step = in_window / max_rows
        picks = sorted({min(int(i * step), len(mine) - 1) for i in range(len(mine)) if i * step < len(mine)})
        chosen_lines = [mine[i] for i in picks]
    columns: list[str] = []
    blocks, predictions = [], []
    for _meta_of, line in reversed(chosen_lines):  # the newest record's columns are the model's
        try:
            record = orjson.loads(line)
            rows, preds = record["inputs"], record.get("predictions") or []
        except (ValueError, KeyError, TypeError):
            skipped += 1
            continue
        if not columns:
            columns = list(record.get("columns") or [])
        if record.get("columns") != columns or not isinstance(rows, list) or len(preds) != len(rows):
            skipped += 1
            continue
        try:
            blocks.append(np.asarray(rows, dtype=np.float64))
        except (TypeError, ValueError):  # strings or nulls: kept as objects
            blocks.append(np.asarray(rows, dtype=object))
        predictions.append(preds)
    if not blocks:
        raise UserInputError(f"no usable records of version {chosen} in the window")
    blocks.reverse()
    predictions.reverse()
    try:
        frame = pd.DataFrame(np.vstack(blocks), columns=columns)
    except ValueError:  # ragged rows
        raise UserInputError(f"version {chosen}: logged rows of different widths (not {len(columns)} values each)") \
            from None
    if frame.dtypes.eq(object).any():
        frame = frame.infer_objects()
    preds = np.concatenate([np.asarray(p) for p in predictions])
    if last is not None and len(frame) > last:
        frame, preds = frame.iloc[-last:].reset_index(drop=True), preds[-last:]
    first, newest = chosen_lines[0][0], chosen_lines[-1][0]
    window = Window(frame, preds, str(newest.get("model_name", "")), chosen, variant, len(chosen_lines),
                    str(first.get("time", "")), str(newest.get("time", "")), skipped,
                    {v: n for v, n in versions.items() if v != chosen}, [str(p) for p in files])
    window.rows_in_window = min(in_window, last) if last is not None else in_window
    window.feedback_lines = feedback
    return window
