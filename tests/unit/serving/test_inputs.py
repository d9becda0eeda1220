"""Scoring requests -> validated DataFrames: every accepted format, every refusal, and the fast path
(numbers only) agreeing with the value-by-value path."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest

from mlnb.errors import BadRequest, UnsupportedMediaType
from mlnb.serving import inputs
from mlnb.serving.inputs import Column, InputSchema, parse_request

SCHEMA = InputSchema((Column("a", "double"), Column("b", "double"), Column("c", "double")))
MIXED = InputSchema((Column("n", "long"), Column("flag", "boolean"), Column("name", "string"),
                     Column("x", "double", required=False)))
MARKER = "SECRET-VALUE-7f3a"  # must never come back in an error message
JSON = "application/json"


def parse(doc, schema: InputSchema = SCHEMA, content_type: str = JSON) -> pd.DataFrame:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_request(body, content_type, schema)


EXPECTED = pd.DataFrame({"a": [1.0, 4.0], "b": [2.5, 5.0], "c": [3.0, -6e-3]})


@pytest.mark.parametrize("doc", [
    {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2.5, 3], [4, 5, -6e-3]]}},
    {"dataframe_split": {"columns": ["c", "a", "b"], "data": [[3, 1, 2.5], [-6e-3, 4, 5]], "index": [7, 8]}},
    {"dataframe_records": [{"a": 1, "b": 2.5, "c": 3}, {"c": -6e-3, "b": 5, "a": 4}]},
    {"instances": [{"a": 1, "b": 2.5, "c": 3}, {"a": 4, "b": 5, "c": -6e-3}]},
    {"inputs": {"b": [2.5, 5], "a": [1, 4], "c": [3, -6e-3]}},
    {"inputs": [{"a": 1, "b": 2.5, "c": 3}, {"a": 4, "b": 5, "c": -6e-3}], "params": {}},
], ids=["split", "split-reordered", "records", "instances", "inputs-columns", "inputs-records"])
def test_every_mlflow_json_format_gives_the_same_frame(doc) -> None:
    frame = parse(doc)
    pd.testing.assert_frame_equal(frame, EXPECTED)
    assert list(frame.dtypes) == [np.float64] * 3


@pytest.mark.parametrize("body", [b"a,b,c\n1,2.5,3\n4,5,-6e-3\n", b"c,a,b\r\n3,1,2.5\r\n-0.006,4,5\r\n",
                                  b'"a","b","c"\n"1",2.5,3\n4,5,-6e-3\n',
                                  b"a,b,c\n1.,2.5,3\n4,5,-.006\n",  # not JSON numbers: numpy's reader
                                  b"a,b,c\n1,2.5,3\n\n4,5,-6e-3\n"],  # a blank line: numpy's reader skips it
                         ids=["plain", "crlf-reordered", "quoted", "not-json-numbers", "blank-line"])
def test_csv_fast_and_pandas_paths_agree(body: bytes) -> None:
    pd.testing.assert_frame_equal(parse(body, content_type="text/csv"), EXPECTED)


def test_parquet_is_refused_with_415() -> None:  # a compressed body can decode to gigabytes
    import io

    buf = io.BytesIO()
    EXPECTED.to_parquet(buf)
    with pytest.raises(UnsupportedMediaType):
        parse(buf.getvalue(), content_type="application/vnd.apache.parquet")


@pytest.mark.parametrize(("doc", "message"), [
    ({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}, "missing column 'c'"),
    ({"dataframe_split": {"columns": ["a", "b", "c", "zz"], "data": [[1, 2, 3, 4]]}}, "unknown column 'zz'"),
    ({"dataframe_split": {"columns": ["a", "b", "c", MARKER + "<script>"], "data": [[1, 2, 3, 4]]}},
     "unknown column (name not shown)"),
    ({"dataframe_split": {"columns": ["a", "b", "c", "my secret is hunter2"], "data": [[1, 2, 3, 4]]}},
     "unknown column (name not shown)"),
    ({"dataframe_split": {"columns": ["a", "a", "c"], "data": [[1, 2, 3]]}}, "column 'a' appears twice"),
    ({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, MARKER, 3]]}},
     "column 'b' (double), row 0: expected a number, got a string"),
    ({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [1, "2.5", 3]]}},
     "column 'b' (double), row 1: expected a number, got a string"),
    ({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, True]]}},
     "column 'c' (double), row 0: expected a number, got a boolean"),
    ({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[None, 2, 3]]}},
     "column 'a' (double), row 0: null where a value is required"),
    ({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, [2], 3]]}}, "got a list"),
    ({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, {"x": MARKER}, 3]]}}, "got an object"),
    ({"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2]]}}, "row 0 has 2 values, expected 3"),
    ({"dataframe_split": {"columns": ["a", "b", "c"], "data": []}}, "no rows"),
    ({"dataframe_split": {"data": [[1, 2, 3]]}}, "dataframe_split: expected"),
    ({"dataframe_records": [{"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2}]}, "dataframe_records[1]: missing column 'c'"),
    ({"dataframe_records": [{"a": 1, "b": 2, "c": 3, "d": 4}]}, "unknown column 'd'"),
    ({"inputs": {"a": [1, 2], "b": [1], "c": [1, 2]}}, "all of the same length"),
    ({"inputs": [[1, 2, 3]]}, "inputs: expected a list of {column: value} records"),
    ({"instances": {"a": [1]}}, "instances: expected a list"),
    ({"params": {"threshold": 0.5}, "inputs": {"a": [1], "b": [2], "c": [3]}}, "takes no parameters"),
    ({"inputs": {"a": [1], "b": [2], "c": [3]}, "dataframe_split": {}}, "exactly one of"),
    ({MARKER: 1}, "unknown key 'SECRET-VALUE-7f3a'"),
    ({}, "exactly one of"),
    ([1, 2, 3], "expected a JSON object"),
])
def test_refusals_name_the_column_and_never_echo_values(doc, message: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse(doc)
    assert message in str(err.value)
    assert err.value.http_status == 400
    if message != "unknown key 'SECRET-VALUE-7f3a'":
        assert MARKER not in str(err.value)


@pytest.mark.parametrize(("body", "message"), [
    (b'{"inputs": ', "not valid JSON"),
    (b'{"inputs": {"a": [NaN], "b": [1], "c": [1]}}', "not valid JSON"),
    (b'{"inputs": {"a": [1e999], "b": [1], "c": [1]}}', "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    (b'{"inputs": {"a": ["\\u0031"], "b": [1], "c": [1]}}', "expected a number, got a string"),
])
def test_malformed_json(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message.replace("(", r"\(")):
        parse(body)


@pytest.mark.parametrize(("body", "message"), [
    (b"a,b\n1,2\n", "missing column 'c'"),
    (b"a,b,c\n999999,1,2,3\n", "csv: row 0 has 4 values, expected 3"),  # pandas would make 999999 the index
    (b"a,b,c\n1,2,3#DROP\n", "column 'c' (double), row 0: expected a number, got a string"),
    (b"a,b,c\n1,2,1_0\n", "got a string"),
    (b"a,b,c\n1,2,\xef\xbc\x91\n", "got a string"),  # full-width 1
    (b"a,b,c\n1,2,3\x00\n", "got a string"),
    (b"a,b,c\n#only a comment\n", "row 0 has 1 values"),
    (b"a,a,a\n1,2,3\n", "column 'a' appears twice"),
    (b"a,b,c\n1,\"2,3\n", "csv: malformed quoting"),
    (b"a,b,c\n1,,3\n", "column 'b' (double), row 0: null where a value is required"),
    (b"a,b,c\n1,2,3\n1,x,3\n", "column 'b' (double), row 1: expected a number, got a string"),
    (b"a,b,c\n1,2,true\n", "got a boolean"),
    (b"a,b,c\n1,2,inf\n", "expected a finite number"),
    (b"a,b,c\n", "no rows"),
    (b"", "not a readable CSV"),
    (b"a,b,c\n\xff,1,2\n", "not a readable CSV"),
])
def test_csv_refusals(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse(body, content_type="text/csv")
    assert message in str(err.value)


@pytest.mark.parametrize("content_type", [None, "", "text/plain", "application/xml", "application/json; charset=latin-1",
                                          "application/json; boundary=x", "multipart/form-data"])
def test_unsupported_media_types_are_415(content_type) -> None:
    with pytest.raises(UnsupportedMediaType) as err:
        parse_request(b"{}", content_type, SCHEMA)
    assert err.value.http_status == 415


@pytest.mark.parametrize("content_type", ["application/json", "Application/JSON", "application/json; charset=utf-8",
                                          'application/json;charset="UTF-8"'])
def test_accepted_media_types(content_type: str) -> None:
    body = json.dumps({"inputs": {"a": [1], "b": [2], "c": [3]}}).encode()
    assert len(parse_request(body, content_type, SCHEMA)) == 1


def test_typed_columns_are_checked_one_by_one() -> None:
    ok = parse({"dataframe_records": [{"n": 3, "flag": True, "name": "x", "x": None},
                                      {"n": -1, "flag": False, "name": "", "x": 1.5}]}, MIXED)
    assert ok["n"].tolist() == [3, -1] and ok["n"].dtype == np.int64
    assert ok["flag"].tolist() == [True, False]
    assert ok["name"].tolist() == ["x", ""]
    assert np.isnan(ok["x"][0]) and ok["x"][1] == 1.5  # not required: null is NaN
    for row, message in [({"n": 1.5}, "column 'n' (long), row 0: expected an integer, got a number"),
                         ({"n": 2 ** 70}, "expected an integer, got a number"),  # orjson: a float
                         ({"flag": 1}, "column 'flag' (boolean), row 0: expected true or false, got an integer"),
                         ({"name": 5}, "column 'name' (string), row 0: expected a string, got an integer"),
                         ({"n": None}, "column 'n' (long), row 0: null where a value is required")]:
        record = {"n": 1, "flag": True, "name": "a", "x": 0.0, **row}
        with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse({"dataframe_records": [record]}, MIXED)


def test_csv_cells_are_typed_strictly() -> None:
    frame = parse(b"n,flag,name,x\n3,TRUE,007,\n-1,false,b,1e3\n", MIXED, content_type="text/csv")
    assert frame["n"].tolist() == [3, -1] and frame["flag"].tolist() == [True, False]
    assert frame["name"].tolist() == ["007", "b"]  # a string column keeps its text
    assert np.isnan(frame["x"][0]) and frame["x"][1] == 1000.0
    for body, message in ((b"n,flag,name,x\n1.5,true,a,1\n", "column 'n' (long), row 0: expected an integer"),
                          (b"n,flag,name,x\n1,yes,a,1\n", "column 'flag' (boolean), row 0: expected true or false")):
        with pytest.raises(BadRequest, match=message.replace("(", r"\(").replace(")", r"\)")):
            parse(body, MIXED, content_type="text/csv")


def test_float32_columns_refuse_what_would_overflow() -> None:
    schema = InputSchema((Column("f", "float"),))
    assert parse({"inputs": {"f": [1.5]}}, schema)["f"].dtype == np.float32
    with pytest.raises(BadRequest, match="out of range for float"):
        parse({"inputs": {"f": [1e300]}}, schema)


def test_integer_ranges() -> None:
    schema = InputSchema((Column("i", "integer"),))
    assert parse({"inputs": {"i": [2 ** 31 - 1]}}, schema)["i"].tolist() == [2 ** 31 - 1]
    with pytest.raises(BadRequest, match="integer out of range for integer"):
        parse({"inputs": {"i": [2 ** 31]}}, schema)


def test_fast_path_agrees_with_the_value_by_value_path() -> None:
    rng = random.Random(7)
    for _ in range(200):
        rows = [[rng.choice([rng.uniform(-1e6, 1e6), rng.randint(-10**6, 10**6), 0, -0.0, 1e-300])
                 for _ in range(3)] for _ in range(rng.randint(1, 20))]
        doc = {"dataframe_split": {"columns": ["a", "b", "c"], "data": rows}}
        body = json.dumps(doc).encode()
        assert inputs._only_numbers(body, doc, "dataframe_split")
        fast = parse_request(body, JSON, SCHEMA)
        slow = inputs._frame_from_columns({n: [r[j] for r in rows] for j, n in enumerate("abc")}, SCHEMA, "t")
        pd.testing.assert_frame_equal(fast, slow)


@pytest.mark.parametrize("value", ['"1.5"', "true", "false", "null", '"nan"'])
def test_the_fast_path_is_never_taken_when_a_value_is_not_a_number(value: str) -> None:
    body = b'{"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1, 2, 3], [4, ' + value.encode() + b", 6]]}}"
    doc = json.loads(body)
    assert not inputs._only_numbers(body, doc, "dataframe_split")
    with pytest.raises(BadRequest, match="column 'b'"):
        parse_request(body, JSON, SCHEMA)


def test_escaped_names_take_the_slow_path_and_still_parse() -> None:
    body = b'{"dataframe_split": {"columns": ["\\u0061", "b", "c"], "data": [[1, 2, 3]]}}'
    assert not inputs._only_numbers(body, json.loads(body), "dataframe_split")
    assert parse_request(body, JSON, SCHEMA)["a"].tolist() == [1.0]


def test_schema_from_an_mlflow_signature() -> None:
    from mlflow.models import infer_signature

    frame = pd.DataFrame({"x": [1.0], "n": [1], "s": ["a"], "f": [True]})
    schema = InputSchema.from_signature(infer_signature(frame))
    assert [(c.name, c.type) for c in schema.columns] == [("x", "double"), ("n", "long"), ("s", "string"),
                                                         ("f", "boolean")]
    from mlnb.errors import ServingError

    with pytest.raises(ServingError, match="column-based input signature"):
        InputSchema.from_signature(infer_signature(np.zeros((2, 3))))
