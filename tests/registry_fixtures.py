"""Real MLflow build runs for registry, server-extension and UI tests, without running a pipeline.

Each fake build is what ``mlnb build`` leaves in MLflow: a build run (tags ``mlnb.kind=build``,
git commit, gate result, metrics) with a ``train`` child run that logged a real (tiny) scikit-learn
model (builds whose gate passed share one, to keep this fast) and, when the gate passed, an
``export`` child run whose model is a registered version.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MODEL_NAME = "tiny-classifier"
EXPERIMENT = "registry-test"


def make_registry_project(base: Path) -> Path:
    """``base/proj``: a project directory (pipeline.yaml, env.yaml) for the registry to work in."""
    root = base / "proj"
    root.mkdir(parents=True, exist_ok=True)
    (root / "pipeline.yaml").write_text("tasks: []\n")
    # a permissive promotion policy: fake builds have a gate verdict, but no git tree, DVC or nbval run
    (root / "env.yaml").write_text(f"mlflow:\n  experiment: {EXPERIMENT}\n  model_name: {MODEL_NAME}\n"
                                   "promotion:\n  gate: true\n  clean_tree: false\n  dvc: false\n  nbval: false\n")
    return root


def fake_builds(root: Path, builds: list[dict[str, Any]]) -> list[str]:
    """Create one build per dict (``f1``, ``roc_auc``, ``gate``: bool, optional ``gate_reason``) in
    ``sqlite:///<root>/mlflow.db``; return the build run ids, oldest first."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    before = os.environ.pop("MLFLOW_TRACKING_URI", None)
    try:
        return _fake_builds(root, builds)
    finally:  # mlflow.set_tracking_uri exports it: never leak one project's store into the next test
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if before is not None:
            os.environ["MLFLOW_TRACKING_URI"] = before


def _fake_builds(root: Path, builds: list[dict[str, Any]]) -> list[str]:
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from sklearn.linear_model import LogisticRegression

    from mlnb import tracking
    from mlnb.config import load_env

    env = load_env(root / "env.yaml")["mlflow"]
    tracking.configure(root, env["experiment"])
    client = MlflowClient()
    try:
        client.create_registered_model(env["model_name"])
    except MlflowException:
        pass  # already there
    X = np.arange(40, dtype=float).reshape(20, 2)
    y = (X[:, 0] > 19).astype(int)
    ids, shared = [], None
    for n, spec in enumerate(builds):
        passed = bool(spec.get("gate", True))
        reason = spec.get("gate_reason") or (f"candidate F1 {spec['f1']:.4f} >= champion F1" if passed else
                                            f"candidate F1 {spec['f1']:.4f} < champion F1 0.9900 + gate.min_delta "
                                            f"0.0200 (missed by {1.01 - spec['f1']:.4f})")
        tags = {"mlnb.kind": "build", "mlnb.git_commit": f"{n:040x}", "mlnb.status": "ok" if passed else "failed",
                "mlnb.gate_passed": str(passed).lower(), "mlnb.gate_reason": reason}
        if not passed:
            tags["mlnb.failed_task"] = "evaluate"
        with mlflow.start_run(run_name="build", tags=tags) as build:
            mlflow.log_metrics({"f1": spec["f1"], "roc_auc": spec.get("roc_auc", spec["f1"])})
            with mlflow.start_run(run_name="train", nested=True, tags={"mlnb.kind": "task", "mlnb.task": "train"}):
                if not passed or shared is None:  # a model of its own where a forced promotion needs one
                    model = LogisticRegression(C=float(n + 1)).fit(X, y)
                    info = mlflow.sklearn.log_model(model, name="model")
                    shared = shared or info
            if passed:
                with mlflow.start_run(run_name="export", nested=True,
                                      tags={"mlnb.kind": "task", "mlnb.task": "export"}) as export:
                    client.create_model_version(env["model_name"], shared.model_uri, run_id=export.info.run_id)
        ids.append(build.info.run_id)
    return ids
