"""Raw-data schema and validation rules (pure: DataFrame in, report or error out).

A schema is a small YAML document (``data/schema.yaml``)::

    target: diagnosis
    min_class_fraction: 0.2
    columns:
      mean_radius: {dtype: float, min: 0, max: 100, max_missing: 0}
      diagnosis:   {dtype: int, allowed: [0, 1]}

Rules are checked in a fixed order (columns, dtype, missing, range/allowed, class
balance) and the first violation raises :class:`mlnb.errors.DataValidationError`
naming the column and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.core.yamlio import read_yaml
from mlnb.errors import DataValidationError, UserInputError

_DTYPE_KINDS = {"float": "fi", "int": "iu", "bool": "b", "str": "OSU"}


@dataclass(frozen=True)
class ColumnRule:
    name: str
    dtype: str
    min: float | None = None
    max: float | None = None
    max_missing: int = 0
    allowed: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Schema:
    target: str
    columns: dict[str, ColumnRule] = field(default_factory=dict)
    min_class_fraction: float = 0.0


def load_schema(path: str | Path) -> Schema:
    """Parse ``schema.yaml``; a malformed entry is a one-line error naming it."""
    path = Path(path)
    raw = read_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("columns"), dict):
        raise UserInputError(f"{path}: schema needs a 'columns' mapping")
    columns = {}
    for name, spec in raw["columns"].items():
        spec = spec or {}
        unknown = set(spec) - {"dtype", "min", "max", "max_missing", "allowed"}
        if unknown:
            raise UserInputError(f"{path}: columns.{name}: unknown key {sorted(unknown)[0]!r}")
        dtype = spec.get("dtype", "float")
        if dtype not in _DTYPE_KINDS:
            raise UserInputError(f"{path}: columns.{name}.dtype: unknown dtype {dtype!r}")
        allowed = spec.get("allowed")
        columns[name] = ColumnRule(
            name=name,
            dtype=dtype,
            min=spec.get("min"),
            max=spec.get("max"),
            max_missing=int(spec.get("max_missing", 0)),
            allowed=tuple(allowed) if allowed is not None else None,
        )
    target = raw.get("target")
    if target not in columns:
        raise UserInputError(f"{path}: target: {target!r} is not one of the columns")
    return Schema(target=target, columns=columns, min_class_fraction=float(raw.get("min_class_fraction", 0.0)))


def _first_bad(series: Any, mask: Any) -> tuple[Any, Any]:
    idx = mask[mask].index[0]
    return idx, series.loc[idx]


def validate_frame(df: Any, schema: Schema) -> dict[str, Any]:
    """Check ``df`` against ``schema``; return a JSON-able report or raise."""
    import pandas as pd

    missing = [c for c in schema.columns if c not in df.columns]
    if missing:
        raise DataValidationError(missing[0], "schema.columns", "required column is missing")
    extra = [c for c in df.columns if c not in schema.columns]
    if extra:
        raise DataValidationError(str(extra[0]), "schema.columns", "column is not in the schema")

    report: dict[str, Any] = {"rows": len(df), "columns": {}}
    for name, rule in schema.columns.items():
        col = df[name]
        if col.dtype.kind not in _DTYPE_KINDS[rule.dtype]:
            detail = f"expected {rule.dtype}, got {col.dtype}"
            if rule.dtype in ("float", "int"):
                numeric = pd.to_numeric(col, errors="coerce")
                bad = numeric.isna() & col.notna()
                if bad.any():
                    row, value = _first_bad(col, bad)
                    detail = f"non-numeric value {str(value)[:40]!r} in row {row}"
            raise DataValidationError(name, f"dtype {rule.dtype}", detail)
        n_missing = int(col.isna().sum())
        if n_missing > rule.max_missing:
            row, _ = _first_bad(col, col.isna())
            raise DataValidationError(
                name, "missing values", f"{n_missing} missing (allowed {rule.max_missing}), first in row {row}"
            )
        present = col.dropna()
        if rule.min is not None and (present < rule.min).any():
            row, value = _first_bad(present, present < rule.min)
            raise DataValidationError(name, f"range min {rule.min}", f"value {value} in row {row}")
        if rule.max is not None and (present > rule.max).any():
            row, value = _first_bad(present, present > rule.max)
            raise DataValidationError(name, f"range max {rule.max}", f"value {value} in row {row}")
        if rule.allowed is not None:
            bad = ~present.isin(rule.allowed)
            if bad.any():
                row, value = _first_bad(present, bad)
                raise DataValidationError(name, f"allowed values {list(rule.allowed)}", f"value {value} in row {row}")
        entry: dict[str, Any] = {"dtype": str(col.dtype), "missing": n_missing}
        if col.dtype.kind in "fiu" and len(present):
            entry.update(min=float(present.min()), max=float(present.max()))
        report["columns"][name] = entry

    counts = df[schema.target].value_counts()
    fractions = (counts / counts.sum()).sort_index()
    report["class_balance"] = {str(k): round(float(v), 6) for k, v in fractions.items()}
    if len(counts) < 2:
        raise DataValidationError(schema.target, "class balance", f"only one class present ({counts.index[0]})")
    minority = fractions.idxmin()
    if fractions[minority] < schema.min_class_fraction:
        raise DataValidationError(
            schema.target,
            "class balance",
            f"minority class {minority} is {fractions[minority]:.1%} (minimum {schema.min_class_fraction:.0%})",
        )
    report["status"] = "passed"
    return report
