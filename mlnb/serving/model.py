"""A loaded, warmed model and the one reference to it that requests read (swapped atomically).

Models load through :mod:`mlnb.adapters.mlflow.safeload`: a scikit-learn skops file with mlnb's own allow-list of
types; pickles and other flavors only under the ``--allow-unsafe-pickle`` opt-in. The estimator is
called directly on the validated DataFrame: the same call MLflow's pyfunc wrapper makes after its own
schema enforcement, without that overhead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlnb.errors import ServingError
from mlnb.serving.inputs import InputSchema
from mlnb.serving.source import Identity

log = logging.getLogger("mlnb.serve")


class ServedModel:
    """One model version: its identity, input schema and predict function."""

    def __init__(self, path: Path, identity: Identity, on_close: Callable[[], None] | None = None) -> None:
        self.path, self.identity, self._on_close = Path(path), identity, on_close
        self.loaded_at = ""
        self.schema: InputSchema
        self._predict: Callable[[Any], Any]
        self._example: Any = None
        self._array: Callable[[Any], Any] | None = None  # predict on the bare float matrix (see warm)
        self.unsafe = False  # loaded through the --allow-unsafe-pickle opt-in (reported by /version)

    @classmethod
    def load(cls, path: Path, identity: Identity, on_close: Callable[[], None] | None = None) -> ServedModel:
        """Load and warm; any failure is one ``ServingError`` line."""
        model = cls(path, identity, on_close)
        try:
            model._load()
            model.warm()
        except ServingError:
            raise
        except Exception as exc:  # a corrupt file, a missing package...
            first = (str(exc).splitlines() or [""])[0][:300]
            raise ServingError(f"{identity.model_uri}: the model failed to load: {type(exc).__name__}: {first}") \
                from None
        model.loaded_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return model

    def _load(self) -> None:
        from mlnb.adapters.mlflow.models import read_model_dir

        meta = read_model_dir(self.path)
        self.schema = InputSchema.from_signature(meta.signature)
        from mlnb.adapters.mlflow.safeload import load_model

        estimator, self.unsafe = load_model(self.path)  # refuses formats that run code (see mlnb.safeload)
        self._predict = estimator.predict
        if "sklearn" in meta.flavors:
            names = getattr(estimator, "feature_names_in_", None)
            if all(c.type == "double" for c in self.schema.columns) and \
                    (names is None or list(names) == self.schema.names):
                self._array = estimator.predict  # tried and checked against the DataFrame path in warm()
        try:
            self._example = meta.input_example()
        except Exception:  # no or unreadable example: warm on a row of zeros instead
            self._example = None

    def warm(self) -> None:
        """Score one request's worth of rows so the first real request pays no lazy set-up."""
        import pandas as pd

        example = self._example
        if not isinstance(example, pd.DataFrame) or list(example.columns) != self.schema.names:
            example = pd.DataFrame([[_zero(c.type) for c in self.schema.columns]], columns=self.schema.names)
        expected = self._predict(example)
        if self._array is not None:
            self._array = self._array if _same_on(self._array, example, expected) else None

    def predict(self, frame: Any) -> Any:
        """Score validated rows. A scikit-learn estimator fitted on exactly the signature's columns (in
        order) gets the bare float matrix: the same numbers without pandas' per-call overhead (a third
        of the time), used only if it gave identical predictions on the input example at load."""
        if self._array is not None:
            return self._array(frame.to_numpy(dtype="float64", copy=False))
        return self._predict(frame)

    def close(self) -> None:
        if self._on_close is not None:
            self._on_close()


def _same_on(predict: Callable[[Any], Any], example: Any, expected: Any) -> bool:
    import numpy as np

    _quiet_feature_names()
    try:
        return bool(np.array_equal(np.asarray(predict(example.to_numpy(dtype="float64"))), np.asarray(expected)))
    except Exception:  # e.g. a ColumnTransformer that selects columns by name
        return False


def _quiet_feature_names() -> None:
    """The matrix's columns were checked against the signature by name: scikit-learn's "X does not have
    valid feature names" warning says nothing here (installed once, for that message only)."""
    import warnings

    warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)


def _zero(kind: str) -> Any:
    return {"boolean": False, "string": ""}.get(kind, 0)


def predictions_json(predictions: Any) -> bytes:
    """``{"predictions": [...]}`` as MLflow's scoring server writes it (DataFrames as records)."""
    import numpy as np
    import orjson
    import pandas as pd

    if isinstance(predictions, pd.DataFrame):
        predictions = predictions.to_dict(orient="records")
    elif isinstance(predictions, pd.Series):
        predictions = predictions.to_numpy()
    if isinstance(predictions, np.ndarray) and (predictions.dtype.kind not in "biuf"
                                                 or not predictions.flags.c_contiguous):
        predictions = predictions.tolist()
    return orjson.dumps({"predictions": predictions}, option=orjson.OPT_SERIALIZE_NUMPY)


class ModelHolder:
    """The served model. Requests take ``current`` once and use that object to the end, so a swap
    never changes the model under a request in flight."""

    def __init__(self, model: ServedModel) -> None:
        self._model = model
        self._lock = threading.Lock()
        self.failed: dict[str, str] = {}  # version -> why it could not be loaded (not retried)

    @property
    def current(self) -> ServedModel:
        return self._model

    def swap(self, new: ServedModel) -> ServedModel:
        with self._lock:
            old, self._model = self._model, new
        log.info("now serving %s version %s (was version %s)", new.identity.model_name or new.identity.model_uri,
                 new.identity.model_version or "?", old.identity.model_version or "?")
        return old
