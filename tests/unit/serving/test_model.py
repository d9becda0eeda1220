"""ServedModel: load, warm, the bare-matrix fast path only where it gives the same predictions, JSON out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlnb.errors import ServingError
from mlnb.serving.model import ModelHolder, ServedModel, predictions_json
from mlnb.serving.source import Identity
from tests.serving_fixtures import breast_cancer, train


def _save(model, path: Path, X) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(X, model.predict(X)), input_example=X.head(3))
    return path


def test_a_plain_pipeline_is_scored_on_the_bare_matrix_with_identical_results(tmp_path: Path) -> None:
    X, _ = breast_cancer()
    model = train()
    served = ServedModel.load(_save(model, tmp_path / "m", X), Identity("m"))
    assert served._array is not None
    assert served.predict(X).tolist() == model.predict(X).tolist()


def test_a_model_that_selects_columns_by_name_keeps_the_dataframe_path(tmp_path: Path) -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = breast_cancer()
    picked = ["worst_area", "mean_radius", "worst_concave_points"]
    model = make_pipeline(ColumnTransformer([("s", StandardScaler(), picked)]), LogisticRegression()).fit(X, y)
    served = ServedModel.load(_save(model, tmp_path / "m", X), Identity("m"))
    assert served._array is None  # the matrix gives other columns (or fails): not used
    assert served.predict(X[served.schema.names]).tolist() == model.predict(X).tolist()


def test_a_broken_model_is_one_serving_error(tmp_path: Path) -> None:
    X, _ = breast_cancer()
    path = _save(train(), tmp_path / "m", X)
    (path / "model.skops").write_bytes(b"not a skops file")
    with pytest.raises(ServingError, match="m: the model failed to load: "):
        ServedModel.load(path, Identity("m"))


def test_predictions_json_matches_mlflows_shapes() -> None:
    assert json.loads(predictions_json(np.array([1, 0]))) == {"predictions": [1, 0]}
    assert json.loads(predictions_json(np.array([[0.1, 0.9]])[:, ::-1])) == {"predictions": [[0.9, 0.1]]}
    assert json.loads(predictions_json(pd.DataFrame({"p": [0.5]}))) == {"predictions": [{"p": 0.5}]}
    assert json.loads(predictions_json(pd.Series(["a", "b"]))) == {"predictions": ["a", "b"]}


def test_the_holder_swaps_one_reference() -> None:
    class Fake:
        def __init__(self, v: str) -> None:
            self.identity = Identity("m", model_version=v)

    holder = ModelHolder(Fake("1"))  # type: ignore[arg-type]
    in_flight = holder.current
    old = holder.swap(Fake("2"))  # type: ignore[arg-type]
    assert old is in_flight and in_flight.identity.model_version == "1"
    assert holder.current.identity.model_version == "2"
