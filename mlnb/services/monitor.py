"""``mlnb monitor``: is what the served model sees still what it was trained on?

    prediction log (mlnb serve --prediction-log) --window, one model version--> current rows
    the version's build --its dvc.lock--> the train split it was fitted on (workspace or DVC cache) --> reference
    per feature: PSI / normalised Wasserstein / KS (numeric), PSI / chi² (categorical)   (mlnb.core.drift)
    predictions: the same test on class shares or scores; data quality against data/schema.yaml
    --> exit 0 no drift, 1 drift, 2 bad input; --json, --html; an MLflow run of kind "monitor"

The reference is found through lineage, so a model trained last month is compared with last month's
training data, not today's workspace: the version's build run recorded ``dvc.lock``, whose hash of
``monitor.reference`` (default ``products/features/train.parquet``) names the exact file; it is read from
the workspace when that copy still hashes to it, else from the DVC cache. Without a registry or a recorded
``dvc.lock`` the workspace file is used and the result says so. ``--reference PATH`` overrides it all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlnb.core.drift import MonitorConfig, column_drift, is_categorical
from mlnb.core.project import Project
from mlnb.errors import UserInputError
from mlnb.services.monitor_log import Window, read_window, since_time


@dataclass(frozen=True)
class MonitorRequest:
    logs: tuple[Path, ...] = ()  # default: monitor.log
    since: str | None = None
    last: int | None = None
    reference: Path | None = None
    version: str | None = None
    variant: str = "champion"
    track: bool = True  # log an MLflow run of kind "monitor"
    ab: bool = False  # compare champion and challenger on the labels (mlnb.services.monitor_live)


@dataclass
class MonitorResult:
    drift: bool
    features: dict[str, dict[str, Any]]
    prediction: dict[str, Any]
    quality: dict[str, Any]
    window: dict[str, Any]
    reference: dict[str, Any]
    config: dict[str, Any]
    drifted: list[str] = field(default_factory=list)
    live: dict[str, Any] | None = None  # quality on /feedback labels, per variant and version
    run_id: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"drift": self.drift, "drifted_features": self.drifted,
                "drift_share": round(len(self.drifted) / max(len(self.features), 1), 4),
                "features": self.features, "prediction": self.prediction, "quality": self.quality,
                "window": self.window, "reference": self.reference, "thresholds": self.config, "live": self.live,
                "mlflow_run_id": self.run_id, "seconds": round(self.seconds, 3)}


def config_of(project: Project) -> MonitorConfig:
    return MonitorConfig.from_env(project.env.get("monitor"), project.env_path.name)


def run_monitor(project: Project, request: MonitorRequest) -> MonitorResult:
    start = time.perf_counter()
    config = config_of(project)
    if request.last is not None and request.last < 1:
        raise UserInputError(f"--last {request.last}: expected a number of rows, at least 1")
    logs = [Path(p) for p in request.logs] or [project.root / config.log]
    window = read_window(logs, since=since_time(request.since), last=request.last, variant=request.variant,
                         version=request.version, max_rows=config.max_rows)
    if len(window.inputs) < config.min_rows:
        raise UserInputError(f"{len(window.inputs)} logged rows of version {window.model_version} in the window: "
                             f"fewer than monitor.min_rows ({config.min_rows}); widen --since or --last")
    reference, described = reference_frame(project, config, window, request.reference)
    target = config.target or str((project.env.get("data") or {}).get("target") or "")
    features: dict[str, dict[str, Any]] = {}
    for name in window.inputs.columns:
        if name == target or name not in reference.columns:
            continue
        ref, cur = reference[name].to_numpy(), window.inputs[name].to_numpy()
        features[name] = column_drift(ref, cur, config, is_categorical(ref, config))
    if not features:
        raise UserInputError(f"{described['path']}: none of the logged columns ({', '.join(window.inputs.columns)}) "
                             "is in the reference")
    prediction = _prediction_drift(reference, target, window, config)
    quality = data_quality(project, window, reference, target)
    drifted = sorted((n for n, f in features.items() if f["drifted"]),
                     key=lambda n: -(features[n].get("psi") or 0))
    share = len(drifted) / len(features)
    drift = share > config.drift_share if config.drift_share else bool(drifted)
    drift = drift or bool(prediction.get("drifted"))
    result = MonitorResult(drift, dict(sorted(features.items(), key=lambda kv: -(kv[1].get("psi") or 0))),
                           prediction, quality, _window_info(window), described,
                           {"psi": config.psi, "wasserstein": config.wasserstein, "bins": config.bins,
                            "drift_share": config.drift_share}, drifted)
    if window.feedback_lines or request.ab:
        from mlnb.services.monitor_live import live

        quality = live(logs, since_time(request.since))
        section = project.env.get("gate")
        gate: dict[str, Any] = section if isinstance(section, dict) else {}
        quality["gate"] = {"metric": gate.get("metric", "f1"), "threshold": gate.get("threshold", 0.9)}
        if request.ab and "ab" not in quality:
            quality["ab_note"] = "no labelled answers of both the champion and a challenger in the window"
        result.live = quality
    result.seconds = time.perf_counter() - start
    return result


def track(project: Project, result: MonitorResult, page: Path | None = None) -> str:
    """An MLflow run of kind ``monitor`` in the project's experiment, tagged with the model version: the
    verdict, the drift share and each feature's PSI as metrics, the full result (and the page) as artifacts."""
    from mlnb.adapters.mlflow import runs as mlflow_runs
    from mlnb.adapters.mlflow import tracking

    tracking.configure(project.root, project.experiment)
    data = result.to_dict()
    w = result.window
    tags = {"mlnb.kind": "monitor", "mlnb.model_name": w["model_name"], "mlnb.model_version": w["model_version"],
            "mlnb.monitor.variant": w["variant"], "mlnb.monitor.drift": str(result.drift).lower(),
            "mlnb.monitor.drifted": ",".join(result.drifted)[:5000]}
    with mlflow_runs.start_run(f"monitor {w['model_name']} v{w['model_version']}", tags) as run:
        run.log_metrics({"drift_share": data["drift_share"], "rows": float(w["rows"]),
                         **{f"psi.{n}"[:250]: float(f["psi"]) for n, f in result.features.items()
                            if isinstance(f.get("psi"), int | float)}})
        run.log_dict(data, "monitor.json")
        if page is not None:
            run.log_artifact(str(page))
        return run.run_id


def last_path(root: Path) -> Path:
    """Where the latest ``mlnb monitor`` result is kept (``mlnb report`` shows it)."""
    from mlnb.core import settings

    return settings.state_dir(root) / "monitor" / "last.json"


def save_last(project: Project, data: dict[str, Any]) -> Path:
    import json

    from mlnb.core.io import atomic_write

    path = last_path(project.root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, encoding="utf-8") as fh:
        fh.write(json.dumps(data, default=str))
    return path


def _window_info(window: Window) -> dict[str, Any]:
    return {"model_name": window.model_name, "model_version": window.model_version, "variant": window.variant,
            "rows": len(window.inputs), "rows_in_window": window.rows_in_window,
            "sampled": window.rows_in_window > len(window.inputs), "records": window.records, "first": window.first,
            "last": window.last,
            "skipped_lines": window.skipped_lines, "other_versions": window.other_versions, "files": window.files}


def _prediction_drift(reference: Any, target: str, window: Window, config: MonitorConfig) -> dict[str, Any]:
    """The served predictions against the reference's labels (class shares, or the target's distribution)."""
    if not target or target not in reference.columns:
        return {"drifted": False, "note": f"no label column {target!r} in the reference to compare predictions with"}
    ref = reference[target].to_numpy()
    categorical = is_categorical(ref, config)
    cur = window.predictions
    if categorical:
        ref = [str(v) for v in ref]
        cur = [str(int(v)) if isinstance(v, float) and float(v).is_integer() else str(v) for v in cur]
    scores = column_drift(ref, cur, config, categorical)
    return {**scores, "against": f"the reference's {target}"}


def data_quality(project: Project, window: Window, reference: Any, target: str) -> dict[str, Any]:
    """Missing values, values outside ``data/schema.yaml``'s ranges, unknown and missing columns."""
    import numpy as np

    schema_path = project.root / str((project.env.get("data") or {}).get("schema") or "data/schema.yaml")
    schema: dict[str, Any] = {}
    if schema_path.is_file():
        import yaml

        try:
            loaded = yaml.safe_load(schema_path.read_text(encoding="utf-8")) or {}
            schema = loaded.get("columns") or {} if isinstance(loaded, dict) else {}
        except yaml.YAMLError as exc:
            raise UserInputError(f"{schema_path}: not YAML: {str(exc).splitlines()[0]}") from None
    known = (set(schema) if schema else set(reference.columns)) - {target}  # the label is not served
    logged = list(window.inputs.columns)
    columns: dict[str, dict[str, Any]] = {}
    for name in logged:
        values = window.inputs[name]
        entry: dict[str, Any] = {"missing": int(values.isna().sum())}
        rule = schema.get(name) if isinstance(schema.get(name), dict) else {}
        if rule and values.dtype.kind in "fiu":
            low, high = rule.get("min"), rule.get("max")
            arr = values.to_numpy(dtype=float)
            outside = np.zeros(len(arr), dtype=bool)
            if isinstance(low, int | float):
                outside |= arr < low
            if isinstance(high, int | float):
                outside |= arr > high
            entry["out_of_range"] = int(outside.sum())
        columns[name] = entry
    problems = {n: e for n, e in columns.items() if e["missing"] or e.get("out_of_range")}
    unknown = sorted(set(logged) - known)
    missing = sorted(known - set(logged))
    return {"schema": str(schema_path.relative_to(project.root)) if schema_path.is_file() else None,
            "rows": len(window.inputs), "columns": problems, "unknown_columns": unknown,
            "missing_columns": missing, "ok": not problems and not unknown and not missing}


def reference_frame(project: Project, config: MonitorConfig, window: Window,
                    explicit: Path | None) -> tuple[Any, dict[str, Any]]:
    """The reference rows and where they came from (see the module doc)."""
    if explicit is not None:
        return _read_table(Path(explicit)), {"path": str(explicit), "source": "--reference", "verified": None}
    path = project.root / config.reference
    found = _lineage_copy(project, config, window)
    if found is not None:
        source, file, md5 = found
        return _read_table(file, path.suffix), {"path": config.reference, "source": source, "md5": md5,
                                                "verified": True}
    if not path.exists():
        raise UserInputError(f"{config.reference}: no reference data (monitor.reference); build the pipeline, "
                             "or pass --reference PATH")
    return _read_table(path), {"path": config.reference, "source": "workspace", "verified": False,
                               "note": "not checked against the model's build (no registry version or no dvc.lock "
                                       "recorded): the workspace copy, which may be newer than the model"}


def _lineage_copy(project: Project, config: MonitorConfig, window: Window) -> tuple[str, Path, str] | None:
    """The reference file the version's build recorded in its ``dvc.lock``: (where, file, md5), or None."""
    if not window.model_name or not window.model_version.isdigit():
        return None
    try:
        from mlnb.adapters.dvc import objects
        from mlnb.adapters.dvc import repo as versioning
        from mlnb.adapters.mlflow import tracking
        from mlnb.services import policy, registry

        tracking.use_store(project.root)
        client = registry._client()
        mv = client.get_model_version(window.model_name, window.model_version)
        build = registry._build_of(client, mv)
        lock = policy.build_lock(client, build) if build else None
    except Exception:  # no registry here, no such version: the workspace copy, said as such
        return None
    md5 = next((str(o.get("md5", "")) for st in ((lock or {}).get("stages") or {}).values() if isinstance(st, dict)
                for o in st.get("outs", []) if isinstance(o, dict) and o.get("path") == config.reference), "")
    if not md5 or md5.endswith(".dir"):
        return None
    workspace = project.root / config.reference
    if workspace.is_file() and objects.file_md5(workspace) == md5:
        return "workspace (matches the build's dvc.lock)", workspace, md5
    cached = objects.object_path(versioning.cache_dir(project.root), md5)
    if cached.is_file() and objects.file_md5(cached) == md5:
        return "DVC cache (the build's copy; the workspace has a newer one)", cached, md5
    return None


def _read_table(path: Path, suffix: str | None = None) -> Any:
    import pandas as pd

    kind = (suffix or path.suffix).lower()
    try:
        if kind == ".parquet":
            return pd.read_parquet(path)
        if kind == ".csv":
            return pd.read_csv(path)
    except FileNotFoundError:
        raise UserInputError(f"{path}: no such file") from None
    except Exception as exc:
        raise UserInputError(f"{path}: cannot read it as {kind[1:]}: {type(exc).__name__}") from None
    raise UserInputError(f"{path}: expected a .parquet or .csv file")
