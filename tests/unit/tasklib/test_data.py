"""Validation rules: each violation names the column and the rule."""

from __future__ import annotations

import pandas as pd
import pytest

from mlnb.errors import DataValidationError, UserInputError
from mlnb.tasklib.data import load_schema, validate_frame
from tests.conftest import REPO

SCHEMA = load_schema(REPO / "data/schema.yaml")


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.read_csv(REPO / "data/raw/breast_cancer.csv")


def test_reference_data_passes(frame: pd.DataFrame) -> None:
    report = validate_frame(frame, SCHEMA)
    assert report["status"] == "passed" and report["rows"] == 569
    assert set(report["class_balance"]) == {"0", "1"}
    assert report["columns"]["mean_radius"]["min"] > 0


def test_dropped_column(frame: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError, match="column 'mean_texture' violates schema.columns: required column is missing"):
        validate_frame(frame.drop(columns=["mean_texture"]), SCHEMA)


def test_extra_column(frame: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError, match="column 'patient_id' violates schema.columns"):
        validate_frame(frame.assign(patient_id=1), SCHEMA)


def test_text_in_numeric_column(frame: pd.DataFrame) -> None:
    frame["worst_area"] = frame["worst_area"].astype(object)
    frame.loc[7, "worst_area"] = "n/a-ish"
    with pytest.raises(DataValidationError, match=r"column 'worst_area' violates dtype float: non-numeric value 'n/a-ish' in row 7"):
        validate_frame(frame, SCHEMA)


def test_missing_values(frame: pd.DataFrame) -> None:
    frame.loc[[3, 9], "mean_area"] = float("nan")
    with pytest.raises(DataValidationError, match=r"'mean_area' violates missing values: 2 missing \(allowed 0\), first in row 3"):
        validate_frame(frame, SCHEMA)


def test_out_of_range(frame: pd.DataFrame) -> None:
    frame.loc[5, "mean_smoothness"] = -0.5
    with pytest.raises(DataValidationError, match=r"'mean_smoothness' violates range min 0: value -0.5 in row 5"):
        validate_frame(frame, SCHEMA)


def test_unknown_label(frame: pd.DataFrame) -> None:
    frame.loc[2, "diagnosis"] = 7
    with pytest.raises(DataValidationError, match=r"'diagnosis' violates allowed values \[0, 1\]: value 7 in row 2"):
        validate_frame(frame, SCHEMA)


def test_class_balance(frame: pd.DataFrame) -> None:
    skewed = pd.concat([frame[frame.diagnosis == 1], frame[frame.diagnosis == 0].head(10)])
    with pytest.raises(DataValidationError, match=r"'diagnosis' violates class balance: minority class 0 is 2.7% \(minimum 20%\)"):
        validate_frame(skewed, SCHEMA)


def test_bad_schema_file(tmp_path) -> None:
    path = tmp_path / "schema.yaml"
    path.write_text("target: y\ncolumns:\n  y: {dtype: complex}\n")
    with pytest.raises(UserInputError, match=r"schema.yaml: columns.y.dtype: unknown dtype 'complex'"):
        load_schema(path)
