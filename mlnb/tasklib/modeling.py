"""Model construction, metrics and evaluation plots (pure scikit-learn/matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlnb.core.io import atomic_path
from mlnb.errors import EnvError

MODELS = ("logistic_regression", "random_forest", "gradient_boosting")
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")


def make_model(model: str, *, C: float = 1.0, max_iter: int = 2000, n_estimators: int = 200, seed: int = 0) -> Any:
    """A scikit-learn ``Pipeline`` (scaler + classifier) chosen by name from env.yaml."""
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if model == "logistic_regression":
        if C <= 0:
            raise EnvError(f"env.yaml: train.C: must be > 0, got {C!r}")
        clf: Any = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    elif model == "random_forest":
        clf = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=1)
    elif model == "gradient_boosting":
        clf = GradientBoostingClassifier(n_estimators=n_estimators, random_state=seed)
    else:
        raise EnvError(f"env.yaml: train.model: unknown model {model!r} (choose from {', '.join(MODELS)})")
    return Pipeline([("scale", StandardScaler()), ("clf", clf)])


def classification_metrics(y_true: Any, y_pred: Any, y_score: Any) -> dict[str, float]:
    """Accuracy, precision, recall, F1 and ROC AUC, rounded to 6 decimals."""
    from sklearn import metrics as m

    values = {
        "accuracy": m.accuracy_score(y_true, y_pred),
        "precision": m.precision_score(y_true, y_pred, zero_division=0),
        "recall": m.recall_score(y_true, y_pred, zero_division=0),
        "f1": m.f1_score(y_true, y_pred, zero_division=0),
        "roc_auc": m.roc_auc_score(y_true, y_score),
    }
    return {k: round(float(v), 6) for k, v in values.items()}


def plot_confusion_matrix(y_true: Any, y_pred: Any, path: str | Path, labels: tuple[str, str]) -> Any:
    """Save a confusion-matrix PNG atomically and return the figure."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, display_labels=list(labels), ax=ax, colorbar=False)
    ax.set_title("Confusion matrix (test split)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return fig


def plot_roc(y_true: Any, y_score: Any, path: str | Path, champion_score: Any = None) -> Any:
    """Save a ROC-curve PNG (candidate, and champion when given) atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from sklearn.metrics import RocCurveDisplay

    fig, ax = plt.subplots(figsize=(4.5, 4))
    RocCurveDisplay.from_predictions(y_true, y_score, name="candidate", ax=ax)
    if champion_score is not None:
        RocCurveDisplay.from_predictions(y_true, champion_score, name="champion", ax=ax)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax.set_title("ROC curve (test split)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return fig


def write_roc_curve(y_true: Any, y_score: Any, path: str | Path) -> int:
    """Save the ROC curve's points (``fpr,tpr,threshold``, 6 decimals) as CSV atomically, for
    ``dvc plots``; returns the number of points."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(y_true, y_score, drop_intermediate=True)
    lines = ["fpr,tpr,threshold"]
    lines += [f"{f:.6f},{t:.6f},{min(th, 1.0):.6f}" for f, t, th in zip(fpr, tpr, thresholds, strict=True)]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1
