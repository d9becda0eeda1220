"""The hand-off runtime of converted pipelines: formats, identity, errors, atomicity."""

from __future__ import annotations

import json
import threading

import numpy as np
import pandas as pd
import pytest

from mlnb.convert import handoff
from mlnb.errors import HandoffError


def roundtrip(tmp_path, **values):
    product = {"data": str(tmp_path / "data")}
    handoff.save(product, "a", list(values), values)
    manifest = json.loads((tmp_path / "data/manifest.json").read_text())
    upstream = {"a": product}
    return manifest, {n: handoff.load(upstream, "a", n) for n in values}


def test_pandas_objects_go_to_parquet_only_when_lossless(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}, index=pd.Index([10, 20], name="id"))
    series = pd.Series([1.5, 2.5], name="score")
    intcols = pd.DataFrame({0: [1], 1: [2]})
    mixed = pd.DataFrame({"m": [1, "two"]})
    manifest, back = roundtrip(tmp_path, frame=frame, series=series, intcols=intcols, mixed=mixed)
    assert manifest["frame"]["format"] == "parquet" and manifest["series"]["format"] == "parquet"
    assert manifest["intcols"]["format"] == "pickle" and manifest["mixed"]["format"] == "pickle"
    pd.testing.assert_frame_equal(back["frame"], frame)
    pd.testing.assert_series_equal(back["series"], series)
    pd.testing.assert_frame_equal(back["intcols"], intcols)
    assert back["mixed"]["m"].tolist() == [1, "two"]


def test_shared_objects_stay_shared_and_lambdas_survive(tmp_path):
    inner = [1, 2]
    holder = {"inner": inner, "fn": lambda x: x * 3}
    _, back = roundtrip(tmp_path, inner=inner, holder=holder)
    assert back["holder"]["inner"] is back["inner"]
    assert back["holder"]["fn"](2) == 6


@pytest.mark.parametrize(("value", "why"), [
    ((i for i in range(3)), "a generator"), (threading.Lock(), "a lock"), (np, "a module"),
])
def test_unserialisable_values_name_the_variable(tmp_path, value, why):
    with pytest.raises(HandoffError, match=f"step `a`: variable `v` is {why}"):
        handoff.save({"data": str(tmp_path / "data")}, "a", ["v"], {"v": value})
    assert not (tmp_path / "data").exists()  # nothing half-written


def test_failed_save_keeps_the_previous_hand_off(tmp_path):
    product = {"data": str(tmp_path / "data")}
    handoff.save(product, "a", ["x"], {"x": 1})
    with pytest.raises(HandoffError, match="variable `bad` .*cannot be pickled"):
        handoff.save(product, "a", ["x", "bad"], {"x": 2, "bad": threading.local()})
    assert handoff.load({"a": product}, "a", "x") == 1


def test_missing_names_and_products(tmp_path):
    product = {"data": str(tmp_path / "data")}
    handoff.save(product, "a", ["maybe"], {})  # bound only on a path not taken
    with pytest.raises(NameError, match="'maybe' is not defined"):
        handoff.load({"a": product}, "a", "maybe")
    with pytest.raises(HandoffError, match="no hand-off from step `b`"):
        handoff.load({"b": {"data": str(tmp_path / "nothing")}}, "b", "x")


def test_rng_state_is_handed_on(tmp_path):
    np.random.seed(3)
    np.random.rand()
    product = {"data": str(tmp_path / "data")}
    handoff.save(product, "a", [handoff.NP_RNG], {})
    expected = np.random.rand()
    np.random.seed(99)
    handoff.load({"a": product}, "a", handoff.NP_RNG)
    assert np.random.rand() == expected
