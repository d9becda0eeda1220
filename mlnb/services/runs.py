"""What the Runs panel and ``mlnb runs`` show about builds (read only; promotions are :mod:`mlnb.services.registry`).

- :func:`list_runs`: recent builds, each with its metrics (whatever the project logs), gate verdict,
  registered version, champion/previous markers, the params that differ from the champion's build,
  its last promotion (``forced`` or not, from the audit trail) and a link into the MLflow UI when a
  tracking server is configured.
- :func:`run_detail`: one build, its params, deltas against the champion, plots (image artifacts of
  the build and its task runs: the evaluate task's ROC curve and confusion matrix) and promotions.
- :func:`compare`: two builds side by side: params, metrics and plots, differences marked.
- :func:`artifact`: one image artifact of a build or task run, checked and downloaded for streaming.
- :func:`changes`: a cheap token that changes when a build or promotion changed the store.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.adapters.mlflow import runs as mlflow_runs
from mlnb.adapters.mlflow import tracking
from mlnb.core import audit
from mlnb.errors import ArtifactNotFound, UserInputError
from mlnb.services import registry

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp"}  # no SVG: it can carry scripts
ARTIFACT_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,199}(/[A-Za-z0-9_][A-Za-z0-9_.\- ]{0,199}){0,4}")
MAX_ARTIFACT_BYTES = 20 * 1024 * 1024
MAX_TASK_RUNS = 100


def _params_diff(params: dict[str, str], champion: dict[str, str] | None) -> list[dict[str, Any]]:
    """The params whose value differs from the champion build's (none without a champion, or for a
    build that logged no params); a key only one side has counts as differing (``None`` there)."""
    if champion is None or not params:
        return []
    keys = sorted(set(params) | set(champion))
    return [{"key": k, "value": params.get(k), "champion": champion.get(k)} for k in keys
            if params.get(k) != champion.get(k)]


def _last_promotions(root: Path) -> dict[str, dict[str, Any]]:
    """Build run id -> its last ``promote`` audit record (who, when, note, forced)."""
    out: dict[str, dict[str, Any]] = {}
    for record in audit.read(root):
        if record.get("action") == "promote" and record.get("run_id"):
            out[record["run_id"]] = _promotion(record)
    return out


def _promotion(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in ("action", "time", "user", "version", "previous_version", "note",
                                       "reason")} | {"forced": bool(record.get("forced"))}


def mlflow_ui_base() -> str | None:
    """The MLflow UI's address when the store is a tracking server (http/https), else None."""
    uri = tracking.current_uri()
    return uri.rstrip("/") if re.match(r"https?://", uri or "") else None


def _versions_by_build(client: Any, project: registry.ModelRegistry) -> dict[str, str]:
    """Build run id -> its newest registered version, as :func:`mlnb.services.registry.versions_by_build` says,
    in a few queries: versions without the ``mlnb.build_run_id`` tag are traced to their build through
    one search per hundred runs instead of one ``get_run`` each (the list stays fast with 200 builds)."""
    out: dict[str, str] = {}

    def record(build: str | None, version: Any) -> None:
        if build and int(version.version) > int(out.get(build, "0")):
            out[build] = str(version.version)

    pending: dict[str, list[Any]] = {}
    for mv in client.search_model_versions(f"name = '{project.model_name}'"):
        if mv.tags.get("mlnb.build_run_id"):
            record(mv.tags["mlnb.build_run_id"], mv)
        elif mv.run_id and registry.RUN_ID.fullmatch(mv.run_id):
            pending.setdefault(mv.run_id, []).append(mv)
    ids = sorted(pending)
    for start in range(0, len(ids), 100):
        chunk = ids[start:start + 100]
        quoted = ", ".join(f"'{i}'" for i in chunk)
        for run in client.search_runs([project.experiment_id], filter_string=f"attributes.run_id IN ({quoted})",
                                      max_results=len(chunk)):
            tags = run.data.tags
            build = run.info.run_id if tags.get("mlnb.kind") == "build" else tags.get("mlflow.parentRunId")
            for mv in pending[run.info.run_id]:
                record(build, mv)
    return out


@dataclass(frozen=True)
class _View:
    """One read of what every row needs: the registry, the champion build's params, the audit trail."""

    project: registry.ModelRegistry
    reg: Any
    champion_run: Any | None
    promotions: dict[str, dict[str, Any]]
    ui_base: str | None

    @classmethod
    def read(cls, client: Any, project: registry.ModelRegistry, runs: list[Any]) -> _View:
        reg = registry._Registry(_versions_by_build(client, project),
                                 tracking.version_by_alias(client, project.model_name, registry.CHAMPION),
                                 tracking.version_by_alias(client, project.model_name, registry.PREVIOUS))
        champion_run = None
        if reg.champion is not None:
            build = registry._build_of(client, reg.champion)
            champion_run = next((r for r in runs if r.info.run_id == build), None)
            if champion_run is None and build:
                try:
                    champion_run = client.get_run(build)
                except Exception:  # the champion's build run was deleted: nothing to diff against
                    champion_run = None
        return cls(project, reg, champion_run, _last_promotions(project.root), mlflow_ui_base())

    @property
    def champion_params(self) -> dict[str, str] | None:
        return dict(self.champion_run.data.params) if self.champion_run is not None else None

    def url(self, run_id: str) -> str | None:
        return f"{self.ui_base}/#/experiments/{self.project.experiment_id}/runs/{run_id}" if self.ui_base else None

    def row(self, run: Any) -> dict[str, Any]:
        run_id = run.info.run_id
        return {**self.reg.summary(run), "params_diff": _params_diff(dict(run.data.params), self.champion_params),
                "promotion": self.promotions.get(run_id), "mlflow_url": self.url(run_id)}

    def champion(self) -> dict[str, Any] | None:
        if self.reg.champion is None:
            return None
        run = self.champion_run
        return {"version": str(self.reg.champion.version), "run_id": run.info.run_id if run else None,
                "metrics": tracking.build_summary(run)["metrics"] if run else {},
                "params": dict(run.data.params) if run else {}}


def metric_keys(rows: list[dict[str, Any]]) -> list[str]:
    """Every metric any of the rows reports, sorted by name (nothing is assumed about which exist)."""
    return sorted({k for row in rows for k in row["metrics"]})


@registry.translated
def list_runs(project: registry.ModelRegistry, limit: int = 20) -> dict[str, Any]:
    """Recent builds (newest first); ``token`` is :func:`changes`' token read before the list, so a
    client polling the token reloads only when something changed after this answer."""
    token = changes(project)["token"]
    client = registry._client()
    runs = tracking.list_builds(project.experiment_id, limit, client)
    view = _View.read(client, project, runs)
    rows = [view.row(r) for r in runs]
    champion = view.champion()
    return {"model_name": project.model_name, "token": token, "metric_keys": metric_keys(rows),
            "champion": {k: champion[k] for k in ("version", "run_id")} if champion else None, "runs": rows}


def _task_runs(client: Any, project: registry.ModelRegistry, build_id: str) -> list[Any]:
    children = client.search_runs([project.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{build_id}'",
                                  max_results=MAX_TASK_RUNS)
    return sorted(children, key=lambda r: r.info.start_time or 0)


def plots(client: Any, project: registry.ModelRegistry, build: Any) -> list[dict[str, Any]]:
    """The image artifacts at the top of the build run and of each of its task runs (the evaluate
    notebook logs ``roc.png`` and ``confusion_matrix.png``), in task order."""
    out = []
    for run in [build, *_task_runs(client, project, build.info.run_id)]:
        task = run.data.tags.get("mlnb.task", "build")
        for item in client.list_artifacts(run.info.run_id):
            if not item.is_dir and posixpath.splitext(item.path)[1].lower() in IMAGE_TYPES:
                out.append({"run_id": run.info.run_id, "path": item.path, "task": task,
                            "name": posixpath.basename(item.path)})
    return out


def _detail(client: Any, view: _View, run: Any) -> dict[str, Any]:
    run_id = run.info.run_id
    return {**view.row(run), "params": dict(sorted(run.data.params.items())),
            "plots": plots(client, view.project, run),
            "promotions": [_promotion(r) for r in audit.read(view.project.root)
                           if r.get("run_id") == run_id and r.get("action") in ("promote", "rollback")]}


@registry.translated
def run_detail(project: registry.ModelRegistry, run_id: str, user: str | None = None) -> dict[str, Any]:
    """One build: everything :func:`list_runs` says, its params, plots and promotions, the metric deltas
    against the current champion and whether a plain promotion would be accepted: each requirement
    of the promotion policy, held or not (``user``: who would promote it)."""
    from mlnb.services import policy, promotion

    client = registry._client()
    run = registry._build_run(client, project, run_id)
    view = _View.read(client, project, [run])
    detail = _detail(client, view, run)
    champion = view.champion()
    requirements = promotion.requirements(project, run, audit.current_user(user))
    refusal = policy.refusal(requirements)
    return {"run": detail, "champion": champion,
            "deltas": audit.deltas(detail["metrics"], champion["metrics"]) if champion else {},
            "promotable": refusal is None, "refusal": refusal,
            "requirements": [r.to_dict() for r in requirements]}


def _side_by_side(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "a": a.get(k), "b": b.get(k), "differs": a.get(k) != b.get(k)} for k in sorted(set(a) | set(b))]


@registry.translated
def compare(project: registry.ModelRegistry, run_a: str, run_b: str) -> dict[str, Any]:
    """Two builds side by side: every param and metric (``differs``; metrics with ``delta`` = b - a)
    and their plots paired by file name."""
    client = registry._client()
    runs = [registry._build_run(client, project, r) for r in (run_a, run_b)]
    view = _View.read(client, project, runs)
    a, b = (_detail(client, view, r) for r in runs)
    metrics = _side_by_side(a["metrics"], b["metrics"])
    for row in metrics:
        both = isinstance(row["a"], float) and isinstance(row["b"], float)
        row["delta"] = round(row["b"] - row["a"], 6) if both else None
    names = list(dict.fromkeys([p["name"] for p in a["plots"]] + [p["name"] for p in b["plots"]]))
    pair = [{"name": n, "a": next((p for p in a["plots"] if p["name"] == n), None),
             "b": next((p for p in b["plots"] if p["name"] == n), None)} for n in names]
    return {"model_name": project.model_name, "a": a, "b": b, "params": _side_by_side(a["params"], b["params"]),
            "metrics": metrics, "plots": pair}


def check_artifact_path(path: Any) -> str:
    """A relative artifact path of plain names (no ``..``, no absolute path, no backslash) ending in an
    image type; anything else is refused without echoing it."""
    if not isinstance(path, str) or not ARTIFACT_PATH.fullmatch(path) or ".." in path.split("/"):
        raise UserInputError("artifact path: expected a relative path of plain names (see the run's plots)")
    if posixpath.splitext(path)[1].lower() not in IMAGE_TYPES:
        raise UserInputError(f"artifact path: only images are served ({', '.join(sorted(IMAGE_TYPES))})")
    return path


@registry.translated
def artifact(project: registry.ModelRegistry, run_id: str, path: str, dst: Path) -> tuple[Path, str]:
    """Download one image artifact of a build (or task) run of this project into ``dst``; return the
    local file and its content type. The path must be one the run lists, under the size limit."""
    registry.check_run_id(run_id)
    check_artifact_path(path)
    client = registry._client()
    run = mlflow_runs.get_run(client, run_id)
    if run is None:
        raise ArtifactNotFound(f"run {run_id}: no such MLflow run")
    if run.info.experiment_id != project.experiment_id or run.data.tags.get("mlnb.kind") not in ("build", "task"):
        raise ArtifactNotFound(f"run {run_id}: not a build or task run of this project")
    listed = {i.path: i for i in client.list_artifacts(run_id, posixpath.dirname(path) or None)}
    item = listed.get(path)
    if item is None or item.is_dir:
        raise ArtifactNotFound(f"run {run_id}: no such image artifact")
    if (item.file_size or 0) > MAX_ARTIFACT_BYTES:
        raise ArtifactNotFound(f"run {run_id}: artifact larger than {MAX_ARTIFACT_BYTES} bytes")
    local = mlflow_runs.download_run_artifact(run_id, path, dst)
    return Path(local), IMAGE_TYPES[posixpath.splitext(path)[1].lower()]


def _stat(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "-"
    return f"{st.st_mtime_ns}:{st.st_size}"


def changes(project: registry.ModelRegistry) -> dict[str, str]:
    """A token that changes when a build starts or ends or the champion moves. With the embedded SQLite
    store: the store's and the audit trail's mtime and size (no query at all); with a tracking server:
    the newest build's id, status and end time, and the champion/previous versions (two small queries)."""
    uri = tracking.tracking_uri(project.root)
    parts = [_stat(project.root / audit.AUDIT_FILE)]
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        parts += [_stat(db), _stat(db.with_name(db.name + "-wal")), _stat(db.with_name(db.name + "-journal"))]
    else:
        with registry._mlflow_errors():
            client = registry._client()
            for run in tracking.list_builds(project.experiment_id, 1, client):
                parts.append(f"{run.info.run_id}:{run.info.status}:{run.info.end_time}")
            for alias in (registry.CHAMPION, registry.PREVIOUS):
                mv = tracking.version_by_alias(client, project.model_name, alias)
                parts.append(str(mv.version) if mv is not None else "-")
    return {"token": hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]}
