"""MLflow model directories and logged models: read an ``MLmodel`` file, log and register a
scikit-learn model. Loading a model's *code* goes through :mod:`mlnb.adapters.mlflow.safeload`.

MLflow is imported inside each function (see :mod:`mlnb.adapters.mlflow.runs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelDir:
    """What an MLflow model directory's ``MLmodel`` file says (nothing of the model is loaded)."""

    path: Path
    signature: Any  # MLflow's ModelSignature (or None); mlnb.serving.inputs reads its column specs
    flavors: dict[str, Any]
    meta: Any  # MLflow's Model

    def input_example(self) -> Any:
        """The input example saved with the model (raises when there is none or it cannot be read)."""
        return self.meta.load_input_example(str(self.path))


def read_model_dir(path: str | Path) -> ModelDir:
    """Read ``<path>/MLmodel``."""
    from mlflow.models import Model

    path = Path(path)
    meta = Model.load(str(path / "MLmodel"))
    return ModelDir(path, meta.signature, dict(meta.flavors), meta)


@dataclass(frozen=True)
class LoggedModel:
    """A model logged to the active run and registered as a new version (no alias)."""

    model_uri: str  # the logged model's URI (``models:/m-...``)
    version: str  # the registered version's number


def log_sklearn(model: Any, X_example: Any, model_name: str | None) -> LoggedModel:
    """Log a scikit-learn ``model`` to the active run (signature inferred on ``X_example``, which is also
    the input example; MLflow's default pip requirements) and register it under ``model_name`` (if given;
    else ``version`` is empty)."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    signature = infer_signature(X_example, model.predict(X_example))
    trusted = _own_types(model)  # e.g. a forest's sklearn.tree._tree.Tree, which skops asks to be named
    info = mlflow.sklearn.log_model(model, name="model", signature=signature, input_example=X_example,
                                    registered_model_name=model_name,
                                    pip_requirements=mlflow.sklearn.get_default_pip_requirements(),
                                    **({"skops_trusted_types": trusted} if trusted else {}))
    return LoggedModel(info.model_uri, str(info.registered_model_version or ""))


def _own_types(model: Any) -> list[str]:
    """The types in ``model`` that skops does not trust by default and that are scikit-learn's own classes
    (the allow-list :mod:`.safeload` loads with); anything else stays untrusted, so logging it fails."""
    import skops.io

    from mlnb.adapters.mlflow.safeload import allowed_type

    return [t for t in skops.io.get_untrusted_types(data=skops.io.dumps(model)) if allowed_type(t)]
