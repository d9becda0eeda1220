"""Evaluate a candidate against a baseline and the champion on the same rows, and export it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlnb.adapters.mlflow.tracking import BUILD_RUN_ENV
from mlnb.core import settings
from mlnb.core.gate import GateConfig, GateResult, evaluate_gate
from mlnb.core.integrity import HASH_TAG, model_sha256
from mlnb.core.io import atomic_dir
from mlnb.errors import GateFailed

_LOADED: dict[str, Any] = {}  # model URI -> model: the champion (or baseline) is loaded once per task


def load_registered(model_uri: str) -> Any:
    """A registered model, downloaded and loaded through :mod:`mlnb.adapters.mlflow.safeload` (never a pickle: the
    gate loads whatever ``@champion`` points at, so a crafted model must not run code here)."""
    if model_uri not in _LOADED:
        import tempfile

        from mlnb.adapters.mlflow.runs import download
        from mlnb.adapters.mlflow.safeload import load_model

        with tempfile.TemporaryDirectory(prefix="mlnb-gate-") as tmp:
            path = download(model_uri, tmp)
            _LOADED[model_uri] = load_model(Path(path))[0]
    return _LOADED[model_uri]


def model_outputs(model_uri: str, X: Any, needs: str) -> Any:
    """What ``gate.metric`` needs from a registered model on ``X``: labels, positive-class scores
    (scikit-learn's ``predict_proba`` when the model has one) or regression values."""
    import numpy as np

    model = load_registered(model_uri)
    if needs == "scores" and hasattr(model, "predict_proba"):
        try:
            return np.asarray(model.predict_proba(X))[:, 1]
        except Exception:  # not a classifier with scores after all: its labels rank the rows
            pass
    out = np.asarray(model.predict(X))
    return out.astype(float) if needs == "values" else out.astype(int)


def _labels(model_uri: str, X: Any) -> Any:
    import numpy as np

    return np.asarray(load_registered(model_uri).predict(X)).astype(int)


def baseline_outputs(config: GateConfig, y_true: Any, X: Any, needs: str) -> tuple[Any, Any]:
    """The baseline model's (outputs, labels) on the test rows: a trivial one (``majority_class``:
    the most frequent class; ``mean``: the mean target) or a registered ``models:/...``."""
    import numpy as np

    y = np.asarray(y_true)
    if config.baseline.startswith("models:/"):
        try:
            out = model_outputs(config.baseline, X, needs)
            return out, (_labels(config.baseline, X) if needs == "scores" else out if needs == "labels" else None)
        except Exception as exc:  # a named baseline that cannot score these rows: the gate cannot judge
            raise GateFailed(f"gate.baseline {config.baseline}: cannot score the test rows: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if needs == "values":
        return np.full(len(y), float(y.astype(float).mean())), None
    majority = int(np.bincount(y.astype(int)).argmax())
    labels = np.full(len(y), majority)
    return (labels.astype(float) if needs == "scores" else labels), labels


def run_gate(y_true: Any, X: Any, model_name: str, config: GateConfig, *, pred: Any,
             score: Any = None) -> GateResult:
    """Score the baseline and the registry's ``champion`` on the candidate's test rows and decide
    (:func:`mlnb.core.gate.evaluate_gate`). ``pred``: the candidate's predictions; ``score``: its
    positive-class scores (needed for ``gate.metric: roc_auc``)."""
    import numpy as np

    from mlnb.adapters.mlflow import tracking
    from mlnb.core.metrics import METRICS

    needs = METRICS[config.metric].needs
    if needs == "scores" and score is None:
        raise GateFailed(f"gate.metric {config.metric}: needs the candidate's scores (run_gate(score=...))")
    y = np.asarray(y_true)
    candidate = np.asarray(score if needs == "scores" else pred)
    labels: dict[str, Any] = {"candidate": np.asarray(pred).astype(int)} if needs != "values" else {}
    baseline, labels["baseline"] = baseline_outputs(config, y, X, needs)
    info = tracking.champion(model_name)
    champion, note = None, None
    if info is not None:
        try:
            champion = model_outputs(info["model_uri"], X, needs)
            if needs != "values":
                labels["champion"] = _labels(info["model_uri"], X) if needs == "scores" else champion
        except Exception as exc:  # e.g. a champion trained on another schema cannot score these rows
            note = f"champion v{info['version']} could not score the test rows ({type(exc).__name__})"
    return evaluate_gate(y, candidate, config, champion_out=champion, champion_info=info, champion_note=note,
                         baseline_out=baseline, labels=labels if needs != "values" else None)


def log_model(model: Any, X_example: Any) -> str:
    """Log a scikit-learn ``model`` to the active run (signature and input example from ``X_example``; a
    tree ensemble's own scikit-learn types named for skops, which MLflow's default format asks for); its URI."""
    from mlnb.adapters.mlflow import models

    return models.log_sklearn(model, X_example, None).model_uri


def export_model(model: Any, X_example: Any, out_dir: str | Path, model_name: str,
                 tags: dict[str, str]) -> dict[str, Any]:
    """Log + register ``model`` as a new version (no alias) and write the same MLflow
    pyfunc directory (signature, input example) atomically to ``out_dir``."""
    from mlnb.adapters.mlflow import models, registry, runs

    info = models.log_sklearn(model, X_example, model_name)
    with atomic_dir(out_dir) as tmp:
        runs.download(info.model_uri, tmp)  # writes the model files into tmp directly
    digest = model_sha256(out_dir)
    version = info.version
    build = settings.get(BUILD_RUN_ENV)  # under `mlnb build`: the build run this version comes from
    extra = {HASH_TAG: digest, **({"mlnb.build_run_id": build} if build else {})}
    registry.set_version_tags(runs.client(), model_name, version, {**tags, **extra})
    return {"model_name": model_name, "version": version, "model_uri": f"models:/{model_name}/{version}",
            "logged_model_uri": info.model_uri, "artifact_sha256": digest, "path": str(out_dir)}
