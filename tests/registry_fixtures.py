"""Real MLflow build runs for registry, server-extension and UI tests, without running a pipeline.

Each fake build is what ``mlnb build`` leaves in MLflow: a build run (tags ``mlnb.kind=build``,
git commit, gate result, params, metrics) with a ``train`` child run that logged a real (tiny)
scikit-learn model (builds whose gate passed share one, to keep this fast), optionally an
``evaluate`` child run with the evaluate notebook's plots, and, when the gate passed, an ``export``
child run whose model is a registered version.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

MODEL_NAME = "tiny-classifier"
EXPERIMENT = "registry-test"
# What `mlnb build` logs as the build run's params (env.yaml flattened); a build's ``params`` override them.
DEFAULT_PARAMS = {"train.model": "logistic_regression", "train.C": "1.0", "train.max_iter": "2000",
                  "split.seed": "42"}


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
    """Create one build per dict in ``sqlite:///<root>/mlflow.db``; return the build run ids, oldest first.

    Keys: ``f1``, optional ``roc_auc``, ``metrics`` (more metrics), ``gate`` (bool: the older
    ``mlnb.gate_passed`` tag; a failed gate fails the build in evaluate), ``gate_reason``, ``verdict``
    (``not_promotable``: a healthy build the gate turned down, tag ``mlnb.gate.verdict``, nothing
    registered), ``params`` (over :data:`DEFAULT_PARAMS`), ``plots`` (bool: an ``evaluate`` child run
    logs ``roc.png`` and ``confusion_matrix.png`` drawn by the example's own plotting code)."""
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

    from mlnb.adapters.mlflow import tracking
    from mlnb.core.config import load_env

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
        verdict = spec.get("verdict")
        passed = bool(spec.get("gate", True)) and verdict in (None, "promotable")
        reason = spec.get("gate_reason") or (f"candidate F1 {spec['f1']:.4f} >= champion F1" if passed else
                                            f"candidate F1 {spec['f1']:.4f} < champion F1 0.9900 + gate.min_delta "
                                            f"0.0200 (missed by {1.01 - spec['f1']:.4f})")
        healthy = passed or verdict == "not_promotable"
        tags = {"mlnb.kind": "build", "mlnb.git_commit": f"{n:040x}", "mlnb.status": "ok" if healthy else "failed",
                "mlnb.gate_passed": str(passed).lower(), "mlnb.gate_reason": reason}
        if verdict:
            tags["mlnb.gate.verdict"] = verdict
        if not healthy:
            tags["mlnb.failed_task"] = "evaluate"
        with mlflow.start_run(run_name="build", tags=tags) as build:
            mlflow.log_params({**DEFAULT_PARAMS, **spec.get("params", {})})
            mlflow.log_metrics({"f1": spec["f1"], "roc_auc": spec.get("roc_auc", spec["f1"]),
                                **spec.get("metrics", {})})
            with mlflow.start_run(run_name="train", nested=True, tags={"mlnb.kind": "task", "mlnb.task": "train"}):
                if not passed or shared is None:  # a model of its own where a forced promotion needs one
                    model = LogisticRegression(C=float(n + 1)).fit(X, y)
                    info = mlflow.sklearn.log_model(model, name="model")
                    shared = shared or info
            if spec.get("plots"):
                with mlflow.start_run(run_name="evaluate", nested=True,
                                      tags={"mlnb.kind": "task", "mlnb.task": "evaluate"}):
                    _log_plots(root, n, spec["f1"])
            if passed:
                with mlflow.start_run(run_name="export", nested=True,
                                      tags={"mlnb.kind": "task", "mlnb.task": "export"}) as export:
                    client.create_model_version(env["model_name"], shared.model_uri, run_id=export.info.run_id)
        ids.append(build.info.run_id)
    return ids


def _log_plots(root: Path, n: int, f1: float) -> None:
    """The evaluate notebook's two plots (same functions, same file names) for made-up scores whose
    quality follows ``f1``, logged to the active run."""
    import mlflow
    import numpy as np

    from mlnb.tasklib.modeling import plot_confusion_matrix, plot_roc

    rng = np.random.default_rng(n)
    y = rng.integers(0, 2, 120)
    score = np.clip(y * f1 + rng.normal(0.5 - f1 / 2, 0.25, len(y)), 0, 1)
    out = root / ".fake-plots" / str(n)
    out.mkdir(parents=True, exist_ok=True)
    for path, draw in ((out / "roc.png", lambda p: plot_roc(y, score, p)),
                       (out / "confusion_matrix.png",
                        lambda p: plot_confusion_matrix(y, (score > 0.5).astype(int), p, ("malignant", "benign")))):
        fig = draw(path)
        import matplotlib.pyplot as plt

        plt.close(fig)
        mlflow.log_artifact(str(path))
