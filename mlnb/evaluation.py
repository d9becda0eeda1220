"""Evaluate a candidate against the champion on the same rows, and export it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlnb.gate import GateConfig, GateResult, evaluate_gate
from mlnb.integrity import HASH_TAG, model_sha256
from mlnb.io import atomic_dir
from mlnb.tracking import BUILD_RUN_ENV


def champion_predictions(model_name: str, X: Any) -> tuple[Any, dict[str, Any] | None, str | None]:
    """Predictions of the registry's ``champion`` on ``X`` -> (pred, info, note)."""
    from mlnb import tracking

    info = tracking.champion(model_name)
    if info is None:
        return None, None, None
    import mlflow.pyfunc

    try:
        model = mlflow.pyfunc.load_model(info["model_uri"])
        pred = model.predict(X)
    except Exception as exc:  # a champion trained on another schema cannot score these rows
        return None, info, f"champion v{info['version']} could not score the test rows: {type(exc).__name__}"
    import numpy as np

    return np.asarray(pred).astype(int), info, None


def run_gate(y_true: Any, pred: Any, X: Any, model_name: str, config: GateConfig) -> GateResult:
    """Score the champion on the same rows (or fall back to a majority-class baseline) and decide."""
    import numpy as np

    champ_pred, info, note = champion_predictions(model_name, X)
    if info is not None and champ_pred is None:
        # keep the rule honest: an unscorable champion is a hard failure, not a free pass
        from sklearn.metrics import f1_score

        cand_f1 = round(float(f1_score(y_true, pred, zero_division=0)), 6)
        return GateResult(False, f"gate cannot compare: {note}", cand_f1, None, "champion", info, {})
    majority = np.full(len(y_true), np.bincount(np.asarray(y_true)).argmax())
    return evaluate_gate(y_true, pred, config, champion_pred=champ_pred, champion_info=info, baseline_pred=majority)


def export_model(model: Any, X_example: Any, out_dir: str | Path, model_name: str,
                 tags: dict[str, str]) -> dict[str, Any]:
    """Log + register ``model`` as a new version (no alias) and write the same MLflow
    pyfunc directory (signature, input example) atomically to ``out_dir``."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    signature = infer_signature(X_example, model.predict(X_example))
    info = mlflow.sklearn.log_model(model, name="model", signature=signature, input_example=X_example,
                                    registered_model_name=model_name,
                                    pip_requirements=mlflow.sklearn.get_default_pip_requirements())
    with atomic_dir(out_dir) as tmp:
        mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(tmp))
        # download_artifacts writes the model files into tmp directly
    digest = model_sha256(out_dir)
    version = str(info.registered_model_version)
    client = MlflowClient()
    build = os.environ.get(BUILD_RUN_ENV)  # under `mlnb build`: the build run this version comes from
    extra = {HASH_TAG: digest, **({"mlnb.build_run_id": build} if build else {})}
    for key, value in {**tags, **extra}.items():
        client.set_model_version_tag(model_name, version, key, value)
    return {"model_name": model_name, "version": version, "model_uri": f"models:/{model_name}/{version}",
            "logged_model_uri": info.model_uri, "artifact_sha256": digest, "path": str(out_dir)}
