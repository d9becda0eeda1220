"""Scoring requests in MLflow's protocol -> a DataFrame the model's signature accepts (pure logic).

Accepted, as ``mlflow models serve`` does:
- ``application/json`` with exactly one of ``dataframe_split`` (``{"columns": [...], "data": [[...]]}``),
  ``dataframe_records`` (``[{col: value}]``), ``instances`` (``[{col: value}]``) or ``inputs``
  (``{col: [values]}`` or ``[{col: value}]``), and optionally ``params`` (refused unless empty: these
  models take none);
- ``text/csv`` with a header row.

Stricter than MLflow: a missing *or unknown* column, a value of the wrong type (a string or a bool in a
number column, a float in an integer column), a null or NaN in a required column, ragged rows: each is a
``BadRequest`` naming the column and row. Messages never repeat request values (unknown column names only
when they are short plain identifiers).
"""

from __future__ import annotations

import io
import math
import operator
import re
from dataclasses import dataclass
from typing import Any

from mlnb.errors import BadRequest, UnsupportedMediaType

JSON, CSV = "application/json", "text/csv"
CONTENT_TYPES = (JSON, CSV)  # not Parquet: its compression makes a small body a multi-GiB frame
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
NUMERIC = {"double": "float64", "float": "float32", "long": "int64", "integer": "int32"}
OTHER = {"boolean": "bool", "string": "object"}
_PLAIN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_NUMBER_TYPES = (int, float)


def shown(name: Any) -> str:
    """A client-supplied name in a message only if it is a short plain identifier."""
    return repr(name) if isinstance(name, str) and _PLAIN.fullmatch(name) else "(name not shown)"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # MLflow's column type: double, float, long, integer, boolean, string
    required: bool = True


@dataclass(frozen=True)
class InputSchema:
    columns: tuple[Column, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def numeric(self) -> bool:
        return all(c.type in NUMERIC for c in self.columns)

    @classmethod
    def from_signature(cls, signature: Any) -> InputSchema:
        """From an MLflow ``ModelSignature`` with a column-based input schema."""
        from mlnb.errors import ServingError

        inputs = getattr(signature, "inputs", None)
        if inputs is None or not inputs.has_input_names():
            raise ServingError("model signature: mlnb serve needs a column-based input signature "
                               "(log the model with infer_signature on a DataFrame)")
        columns = []
        for spec in inputs.inputs:
            kind = str(getattr(spec.type, "name", spec.type)).lower()
            if kind not in NUMERIC and kind not in OTHER:
                raise ServingError(f"model signature: column {spec.name!r} has type {kind!r}, which mlnb serve "
                                   f"does not validate (supported: {', '.join([*NUMERIC, *OTHER])})")
            columns.append(Column(spec.name, kind, bool(getattr(spec, "required", True))))
        return cls(tuple(columns))


def media_type(content_type: str | None) -> str:
    """The request's media type, or ``UnsupportedMediaType`` (415) naming what is accepted."""
    parts = [p.strip() for p in (content_type or "").split(";")]
    mime = parts[0].lower()
    if mime not in CONTENT_TYPES:
        raise UnsupportedMediaType(f"Content-Type must be one of {', '.join(CONTENT_TYPES)}")
    for param in parts[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() != "charset" or value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType("Content-Type: only the parameter charset=utf-8 is accepted")
    return mime


def parse_request(body: bytes, content_type: str | None, schema: InputSchema) -> Any:
    """A validated DataFrame (columns in signature order, signature dtypes) from a request body."""
    if media_type(content_type) == JSON:
        return _from_json(body, schema)
    return _from_csv(body, schema)


# --- JSON --------------------------------------------------------------------------------------------

def _from_json(body: bytes, schema: InputSchema) -> Any:
    import orjson

    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else "malformed"
        reason = "nested too deeply" if "depth limit" in detail else f"not valid JSON (UTF-8): {detail}"
        raise BadRequest(f"request body: {reason}") from None  # orjson's messages carry positions, not values
    if not isinstance(doc, dict):
        raise BadRequest(f"request body: expected a JSON object with one of {', '.join(FORMATS)}")
    unknown = [k for k in doc if k not in FORMATS and k != "params"]
    if unknown:
        raise BadRequest(f"request body: unknown key {shown(unknown[0])} (expected one of {', '.join(FORMATS)}, "
                         "and optionally params)")
    if doc.get("params"):
        raise BadRequest("request body: params: this model takes no parameters")
    keys = [k for k in FORMATS if k in doc]
    if len(keys) != 1:
        raise BadRequest(f"request body: expected exactly one of {', '.join(FORMATS)}, got {len(keys)}")
    key, value = keys[0], doc[keys[0]]
    numbers = _only_numbers(body, doc, key)
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("columns"), list) \
                or not isinstance(value.get("data"), list) or set(value) - {"columns", "data", "index"}:
            raise BadRequest("dataframe_split: expected {\"columns\": [names], \"data\": [[row values]]}")
        return _from_rows(value["columns"], value["data"], schema, key, numbers)
    if key == "inputs" and isinstance(value, dict):
        return _from_columns(value, schema)
    if isinstance(value, list) and all(isinstance(r, dict) for r in value):
        return _from_records(value, schema, key, numbers)
    raise BadRequest(f"{key}: expected a list of {{column: value}} records"
                     + (" or {column: [values]}" if key == "inputs" else ""))


def _check_names(given: list[Any], schema: InputSchema, where: str) -> list[int]:
    """Positions of the schema's columns in ``given``; a missing, unknown or repeated name is an error."""
    index: dict[Any, int] = {}
    for i, name in enumerate(given):
        if not isinstance(name, str):
            raise BadRequest(f"{where}: column names must be strings (position {i})")
        if name in index:
            raise BadRequest(f"{where}: column {shown(name)} appears twice")
        index[name] = i
    wanted = schema.names
    missing = [n for n in wanted if n not in index]
    if missing:
        raise BadRequest(f"{where}: missing column {missing[0]!r}"
                         + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    known = set(wanted)
    extra = [n for n in given if n not in known]
    if extra:
        raise BadRequest(f"{where}: unknown column {shown(extra[0])} (the model takes {len(wanted)} columns)")
    return [index[n] for n in wanted]


def _from_rows(columns: list[Any], rows: list[Any], schema: InputSchema, where: str, numbers: bool) -> Any:
    order = _check_names(columns, schema, where)
    width = len(columns)
    if not rows:
        raise BadRequest(f"{where}: no rows")
    fast = _numeric_matrix(rows, width, schema) if schema.numeric and numbers else None
    if fast is not None:
        return _frame_from_matrix(fast[:, order] if order != list(range(width)) else fast, schema)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise BadRequest(f"{where}: row {i} has {len(row) if isinstance(row, list) else 'no list of'} "
                             f"values, expected {width}")
    return _frame_from_columns({c.name: [row[j] for row in rows] for c, j in zip(schema.columns, order,
                                                                                    strict=True)}, schema, where)


def _from_records(records: list[dict[str, Any]], schema: InputSchema, where: str, numbers: bool) -> Any:
    if not records:
        raise BadRequest(f"{where}: no rows")
    wanted = set(schema.names)
    for i, rec in enumerate(records):
        if rec.keys() != wanted:
            _check_names(list(rec), schema, f"{where}[{i}]")
    names = schema.names
    if schema.numeric and numbers:
        row = operator.itemgetter(*names) if len(names) > 1 else (lambda rec: (rec[names[0]],))
        fast = _numeric_matrix([row(rec) for rec in records], len(names), schema)
        if fast is not None:
            return _frame_from_matrix(fast, schema)
    return _frame_from_columns({n: [rec[n] for rec in records] for n in names}, schema, where)


def _from_columns(columns: dict[str, Any], schema: InputSchema) -> Any:
    _check_names(list(columns), schema, "inputs")
    lengths = {len(v) if isinstance(v, list) else -1 for v in columns.values()}
    if -1 in lengths or len(lengths) != 1:
        raise BadRequest("inputs: every column must be a list of values, all of the same length")
    if 0 in lengths:
        raise BadRequest("inputs: no rows")
    return _frame_from_columns({n: columns[n] for n in schema.names}, schema, "inputs")


def _only_numbers(body: bytes, doc: dict[str, Any], key: str) -> bool:
    """True when every value in the body is a JSON number (no string, true, false or null): what is
    left of the body without number characters holds no more quotes, t, f or n than the keys and
    column names do themselves. Escapes (a backslash) send the body down the slow path. For records,
    every record is assumed to carry exactly the schema's keys; ``_from_records`` checks that."""
    value = doc[key]
    counts = _char_counts(list(doc))
    if key == "dataframe_split" and isinstance(value, dict):
        columns = value.get("columns")
        counts = _add(counts, _char_counts([*value, *(columns if isinstance(columns, list) else [])]))
    elif isinstance(value, list) and value and isinstance(value[0], dict):
        per_record = _char_counts(list(value[0]))
        counts = _add(counts, tuple(n * len(value) for n in per_record))
    rest = body.translate(None, _UNWATCHED)
    return b"\\" not in rest and counts == tuple(rest.count(c) for c in _WATCHED)


_WATCHED = (b'"', b"t", b"f", b"n")
_UNWATCHED = bytes(c for c in range(256) if bytes([c]) not in (*_WATCHED, b"\\"))


def _char_counts(strings: list[Any]) -> tuple[int, ...]:
    text = "".join(f'"{s}"' for s in strings if isinstance(s, str)).encode("utf-8", "replace")
    return tuple(text.count(c) for c in _WATCHED)  # keys and names with escapes fail the backslash check


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True))


def _numeric_matrix(rows: list[Any], width: int, schema: InputSchema) -> Any | None:
    """The fast path, for bodies of numbers only (see ``_only_numbers``): a float64 (n, width) matrix
    when the rows are a rectangle of finite numbers, else None (the slow path then names the first bad
    value)."""
    import numpy as np

    if any(c.type != "double" for c in schema.columns):
        return None  # 1.0 and 1 are one float, and float32 overflows: the column checks decide those
    try:
        arr = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.ndim != 2 or arr.shape[1] != width:
        return None
    if not np.isfinite(arr).all():
        return None
    return arr


def _frame_from_matrix(arr: Any, schema: InputSchema) -> Any:
    """The fast paths' frame: only all-``double`` signatures take them, so no column needs a cast."""
    import pandas as pd

    return pd.DataFrame(arr, columns=schema.names, copy=False)


def _frame_from_columns(values: dict[str, list[Any]], schema: InputSchema, where: str) -> Any:
    """Check every value of every column against its type (the slow path, and the only path for
    non-numeric signatures)."""
    import numpy as np
    import pandas as pd

    data = {}
    for col in schema.columns:
        column = values[col.name]
        for i, v in enumerate(column):
            problem = _value_problem(v, col)
            if problem:
                raise BadRequest(f"{where}: column {col.name!r} ({col.type}), row {i}: {problem}")
        if col.type in NUMERIC:
            nulls = any(_isna(v) for v in column)
            data[col.name] = np.array([np.nan if _isna(v) else v for v in column],
                                      dtype="float64" if nulls else NUMERIC[col.type])
        else:
            data[col.name] = pd.array(column, dtype="boolean" if col.type == "boolean" else object)
    return pd.DataFrame(data)


def _value_problem(v: Any, col: Column) -> str | None:
    if v is None or (type(v) is float and math.isnan(v)):
        return "null where a value is required" if col.required else None
    kind = col.type
    if kind in ("double", "float"):
        if type(v) not in _NUMBER_TYPES:
            return f"expected a number, got {_json_type(v)}"
        if not math.isfinite(v):
            return "expected a finite number"
        if kind == "float" and abs(v) > 3.4028234663852886e38:
            return "number out of range for float"
    elif kind in ("long", "integer"):
        if type(v) is not int:
            return f"expected an integer, got {_json_type(v)}"
        bits = 63 if kind == "long" else 31
        if not -(2 ** bits) <= v < 2 ** bits:
            return f"integer out of range for {kind}"
    elif kind == "boolean" and type(v) is not bool:
        return f"expected true or false, got {_json_type(v)}"
    elif kind == "string" and type(v) is not str:
        return f"expected a string, got {_json_type(v)}"
    return None


def _json_type(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(v), type(v).__name__)


# --- CSV ---------------------------------------------------------------------------------------------

_CSV_NUMBERS = b"0123456789.,-+eE\r\n"
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_INT = re.compile(r"[+-]?[0-9]+")
_SPECIAL = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
            "+infinity": math.inf, "-infinity": -math.inf}


def _from_csv(body: bytes, schema: InputSchema) -> Any:
    """A header row naming the columns, then one row per line. Read with the csv module (and, for bodies
    of plain numbers only, numpy's C reader); every cell is converted by its column's type, strictly."""
    import csv

    head, _, rest = body.partition(b"\n")
    try:
        names = next(csv.reader([head.decode("utf-8").rstrip("\r")])) if head.strip() else []
        text = rest.decode("utf-8")
    except (UnicodeDecodeError, csv.Error):
        raise BadRequest("request body: not a readable CSV file (UTF-8, with a header row)") from None
    if not names:
        raise BadRequest("request body: not a readable CSV file (UTF-8, with a header row)")
    order = _check_names(names, schema, "csv")
    if all(c.type == "double" for c in schema.columns) and rest.strip() and not rest.translate(None, _CSV_NUMBERS):
        fast = _csv_numbers(rest, len(names))
        if fast is not None:
            return _frame_from_matrix(fast if order == list(range(len(names))) else fast[:, order], schema)
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), strict=True) if row]
    except csv.Error:
        raise BadRequest("csv: malformed quoting") from None
    if not rows:
        raise BadRequest("csv: no rows")
    for i, row in enumerate(rows):
        if len(row) != len(names):
            raise BadRequest(f"csv: row {i} has {len(row)} values, expected {len(names)}")
    values = {c.name: [_cell(row[j], c.type) for row in rows] for c, j in zip(schema.columns, order, strict=True)}
    return _frame_from_columns(values, schema, "csv")


def _csv_numbers(rest: bytes, width: int) -> Any | None:
    """Plain numbers only (the caller checked the bytes): as one JSON array of rows (orjson: about twice as fast as
    numpy's C reader), else numpy's C reader (numbers JSON does not spell, such as ``.5``); None if ragged."""
    import numpy as np
    import orjson

    lines = rest.replace(b"\r\n", b"\n").strip(b"\n")
    try:
        arr = np.array(orjson.loads(b"[[" + lines.replace(b"\n", b"],[") + b"]]"), dtype=np.float64, ndmin=2)
        if arr.ndim == 2 and arr.shape[1] == width and len(arr) and np.isfinite(arr).all():
            return arr
    except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError):
        pass
    try:
        arr = np.loadtxt(io.BytesIO(rest), delimiter=",", dtype=np.float64, ndmin=2, comments=None,
                         encoding="utf-8")
    except ValueError:
        return None
    if arr.shape[1] != width or len(arr) == 0 or not np.isfinite(arr).all():
        return None
    return arr


def _cell(text: str, kind: str) -> Any:
    """A CSV cell as the JSON value it spells, for the type checks: '' is null, numbers by a strict
    grammar (no '_', no comments, no full-width digits), true/false as booleans, anything else a string."""
    if text == "":
        return None
    low = text.lower()
    if kind == "string":
        return text
    if low in ("true", "false"):
        return low == "true"
    if _INT.fullmatch(text):
        return int(text) if kind in ("long", "integer") else float(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if low in _SPECIAL and kind in ("double", "float"):
        return _SPECIAL[low]
    return text


def _isna(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
