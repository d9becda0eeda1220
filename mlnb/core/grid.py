"""A task's ``grid``: the tasks Ploomber 0.23 makes of it (``TaskGroup.from_grid``), statically (pure).

A grid is a mapping (every combination of its values) or a list of mappings (each expanded, then
concatenated); a scalar value is a list of one. Task *i* is named ``name + str(i)``, or the name
with its ``[[param]]`` placeholders filled when it has any. Each product path gets ``-i`` before its
suffixes, then its ``[[param]]`` placeholders filled (``out/fit-[[kind]].json`` -> ``out/fit-a-0.json``).
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from mlnb.errors import SpecError

_BRACKETS = re.compile(r"\[\[\s*([A-Za-z_][A-Za-z0-9_]*)\s*\]\]")


def combinations(grid: Any, params: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The params of each task of the grid, in Ploomber's order (grid values first, then ``params``)."""
    grids = [grid] if isinstance(grid, dict) else grid
    if not isinstance(grids, list) or not grids or not all(isinstance(g, dict) and g for g in grids):
        raise SpecError(f"{where}.grid: must be a mapping of param -> values, or a list of such mappings")
    out = []
    for g in grids:
        for key, value in g.items():
            if isinstance(value, dict):
                raise SpecError(f"{where}.grid.{key}: values computed by a function (dotted_path) are not "
                                "supported by mlnb yet; list the values")
        overlap = sorted(set(g) & set(params))
        if overlap:
            raise SpecError(f"{where}.grid: {overlap[0]!r} is both in 'grid' and in 'params'")
        values = [v if isinstance(v, list | tuple) else [v] for v in g.values()]
        out += [{**dict(zip(g, combo, strict=True)), **params} for combo in itertools.product(*values)]
    return out


def fill(text: str, params: dict[str, Any], where: str) -> str:
    """Replace ``[[param]]`` placeholders (Ploomber renders them with Jinja: values printed as str)."""
    def value(match: re.Match[str]) -> str:
        if match.group(1) not in params:
            raise SpecError(f"{where}: placeholder [[{match.group(1)}]] is not a grid or params key")
        return str(params[match.group(1)])
    return _BRACKETS.sub(value, text)


def task_name(name: str, index: int, params: dict[str, Any], where: str) -> str:
    return fill(name, params, f"{where}.name") if "[[" in name else f"{name}{index}"


def product_path(path: str, index: int, params: dict[str, Any], where: str) -> str:
    p = Path(path)
    suffix = "".join(p.suffixes)
    stem = p.name.replace(suffix, "") if suffix else p.name
    return fill(str(p.parent / f"{stem}-{index}{suffix}"), params, where)
