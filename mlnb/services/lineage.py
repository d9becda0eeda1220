"""One lineage record per model: where a registered version (or a build) comes from, and whether
each link still holds (``mlnb lineage``, ``GET /mlnb/api/runs/<id>/lineage``).

The chain, newest first: model version (its ``mlnb.artifact_sha256``) <- build run (status, gate
verdict) <- git commit (clean tree or not) <- params (the env snapshot the run logged) <- raw data
and each stage's hashes (the ``dvc.lock`` the build recorded) <- executed notebooks (the task runs'
MLflow artifacts) <- promotions, rollbacks and approvals (audit trail, run tags).

``verify`` re-hashes what is available here: the registered model's files, the local serving
artifact, every output ``dvc.lock`` names (in the workspace, else the DVC cache), the raw data, the
executed notebooks in MLflow against ``dvc.lock``, and the commit in git. Each link is held, broken
(named, with both hashes) or unavailable. Reads only.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlnb.adapters.mlflow import runs as mlflow_runs
from mlnb.adapters.mlflow import tracking
from mlnb.core import audit, integrity
from mlnb.core.gate import verdict_of
from mlnb.errors import RunNotFound, UserInputError
from mlnb.services import policy, registry

MODEL_REF = re.compile(r"^models:/([A-Za-z0-9][A-Za-z0-9_.\-]{0,127})(?:/(\d+)|@([A-Za-z0-9_\-]{1,64}))$")


@dataclass(frozen=True)
class Link:
    name: str
    held: bool | None  # None: could not be checked here
    detail: str


def resolve(client: Any, project: registry.ModelRegistry, ref: str) -> tuple[str, Any | None]:
    """``RUN_ID`` | ``models:/NAME/VERSION`` | ``models:/NAME@ALIAS`` -> (build run id, model version)."""
    match = MODEL_REF.match(ref or "")
    if match is None:
        run_id = registry.check_run_id(ref) if not (ref or "").startswith("models:") else None
        if run_id is None:
            raise UserInputError(f"{ref}: expected a run id, models:/NAME/VERSION or models:/NAME@ALIAS")
        version = registry.versions_by_build(client, project.model_name).get(run_id)
        return run_id, client.get_model_version(project.model_name, version) if version else None
    name, number, alias = match.groups()
    if alias:
        mv = tracking.version_by_alias(client, name, alias)
        if mv is None:
            raise RunNotFound(f"{ref}: no version of {name} has the alias {alias!r}")
    else:
        try:
            mv = client.get_model_version(name, number)
        except Exception:
            raise RunNotFound(f"{ref}: no such registered model version") from None
    build = registry._build_of(client, mv)
    if not build:
        raise RunNotFound(f"{ref}: version {mv.version} names no build run")
    return build, mv


def _lock_stages(lock: dict[str, Any] | None) -> dict[str, dict[str, dict[str, str]]]:
    stages = (lock or {}).get("stages") or {}
    return {name: {kind: {o["path"]: str(o.get("md5", "")) for o in (st or {}).get(kind, []) if isinstance(o, dict)}
                   for kind in ("deps", "outs")} for name, st in stages.items() if isinstance(st, dict)}


def _workspace_lock(root: Path) -> dict[str, str]:
    """Path -> md5 of every output and dependency the workspace's own ``dvc.lock`` records."""
    import yaml

    try:
        lock = yaml.safe_load((root / "dvc.lock").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    stages = _lock_stages(lock if isinstance(lock, dict) else None)
    return {p: m for e in stages.values() for kind in ("deps", "outs") for p, m in e[kind].items()}


def _notebooks(client: Any, run: Any) -> list[dict[str, Any]]:
    out = []
    for child in client.search_runs([run.info.experiment_id],
                                    filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"):
        task = child.data.tags.get("mlnb.task")
        if task:
            names = [a.path for a in client.list_artifacts(child.info.run_id, "notebooks")]
            out.append({"task": task, "run_id": child.info.run_id, "status": child.data.tags.get("mlnb.status", ""),
                        "artifacts": names})
    return sorted(out, key=lambda n: n["task"])


@registry.translated
def lineage(project: registry.ModelRegistry, ref: str, verify: bool = False) -> dict[str, Any]:
    """The chain for ``ref`` (see the module doc), with ``links`` when ``verify``."""
    client = registry._client()
    run_id, mv = resolve(client, project, ref)
    run = registry._build_run(client, project, run_id)
    tags = run.data.tags
    lock = policy.build_lock(client, run_id)
    stages = _lock_stages(lock)
    model = None
    if mv is not None:
        model = {"name": mv.name, "version": str(mv.version), "aliases": sorted(mv.aliases or []),
                 "artifact_sha256": mv.tags.get(integrity.HASH_TAG, ""), "source_run_id": mv.run_id,
                 "registered_by": mv.tags.get("mlnb.registered_by", "mlnb build (export)")}
    version = model["version"] if model else None
    history = [r for r in audit.read(project.root) if r.get("run_id") == run_id or (
        version and r.get("version") == version and r.get("model_name") == project.model_name)]
    data = {"ref": ref, "model": model,
            "build": {"run_id": run_id, "status": tags.get("mlnb.status", run.info.status.lower()),
                      "start_time": run.info.start_time, "verdict": verdict_of(tags),
                      "gate_reason": tags.get("mlnb.gate_reason", ""), "metrics": dict(run.data.metrics)},
            "git": {"commit": tags.get("mlnb.git_commit", ""), "clean": tags.get("mlnb.git_clean"),
                    "changed": tags.get("mlnb.git_changed", "")},
            "params": dict(sorted(run.data.params.items())),
            "gate_settings_changes": tags.get("mlnb.gate.config_changes", ""),
            "dvc": {"recorded": tags.get("mlnb.dvc.recorded", ""), "note": tags.get("mlnb.dvc.note", ""),
                    "stages": stages},
            "notebooks": _notebooks(client, run),
            "promotions": [r for r in history if r.get("action") != "approve"],
            "approvals": sorted(policy.approvers(tags).values(), key=lambda a: a.get("time", ""))}
    if verify:
        data["links"] = [asdict(link) for link in check(project.root, client, data, mv)]
    return data


def _dir_md5s(cache: Path, md5: str) -> dict[str, str] | None:
    import json

    from mlnb.adapters.dvc import objects

    obj = objects.object_path(cache, md5)
    try:
        return {i["relpath"]: i["md5"] for i in json.loads(obj.read_text(encoding="utf-8"))}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _output_link(root: Path, cache: Path, path: str, md5: str, current: dict[str, str]) -> Link:
    """One output the build's ``dvc.lock`` names: the workspace copy hashes to it; or a later build
    replaced it (the workspace's ``dvc.lock`` records that copy) and the DVC cache keeps the build's;
    anything else changed the file since (broken). ``current``: the workspace's dvc.lock, path -> md5."""
    from mlnb.adapters.dvc import objects

    if current.get(path) not in (None, md5):
        got = _workspace_md5(root / path, cache, current[path])
        if got == current[path]:
            bad = objects.verify(cache, [objects.Entry(path, md5)])
            if not bad:
                return Link(path, True, "rebuilt since (the workspace's dvc.lock records the new copy); the "
                                        "build's copy is intact in the DVC cache")
            return Link(path, None, f"rebuilt since; the build's copy in the DVC cache is {bad[0].kind}")
    target = root / path
    if md5.endswith(".dir"):
        listing = _dir_md5s(cache, md5)
        if listing is None:
            return Link(path, None, f"directory listing {md5} not in the DVC cache")
        if not target.is_dir():
            bad = objects.verify(cache, [objects.Entry(path, md5)])
            return Link(path, not bad, f"not in the workspace; DVC cache: {bad[0].describe() if bad else 'intact'}")
        for rel, want in sorted(listing.items()):
            f = target / rel
            got = objects.file_md5(f) if f.is_file() else "missing"
            if got != want:
                return Link(path, False, f"{path}/{rel}: md5 {got[:12]} != dvc.lock's {want[:12]} (changed since "
                                         "the build)")
        return Link(path, True, f"{len(listing)} file(s) match dvc.lock")
    if target.is_file():
        got = objects.file_md5(target)
        return Link(path, got == md5, "matches dvc.lock" if got == md5 else
                    f"md5 {got[:12]} != dvc.lock's {md5[:12]} (changed since the build)")
    bad = objects.verify(cache, [objects.Entry(path, md5)])
    if bad and bad[0].kind == "missing":
        return Link(path, None, "not in the workspace nor the DVC cache")
    return Link(path, not bad, "not in the workspace; the DVC cache copy " + ("is intact" if not bad else "is corrupt"))


def _workspace_md5(target: Path, cache: Path, md5: str) -> str | None:
    """The workspace copy's DVC hash when it is the one ``md5`` names (a directory: file by file)."""
    from mlnb.adapters.dvc import objects

    if not md5.endswith(".dir"):
        return objects.file_md5(target) if target.is_file() else None
    listing = _dir_md5s(cache, md5)
    if listing is None or not target.is_dir():
        return None
    same = all((target / rel).is_file() and objects.file_md5(target / rel) == want for rel, want in listing.items())
    return md5 if same else None


def check(root: Path, client: Any, data: dict[str, Any], mv: Any | None) -> list[Link]:
    """Re-hash what is available and say which links hold."""
    from mlnb.adapters.dvc import repo as versioning

    links: list[Link] = []
    commit = data["git"]["commit"][:40]
    if re.fullmatch(r"[0-9a-f]{40}", commit):
        proc = subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=root, capture_output=True)
        links.append(Link("git commit", proc.returncode == 0, commit[:12] + (" is in this repository" if
                          proc.returncode == 0 else " is not in this repository")))
    if mv is not None:
        links.append(_model_link(mv))
        local = root / "products" / "export" / "model"
        want = mv.tags.get(integrity.HASH_TAG, "")
        if local.is_dir() and want:
            got = integrity.model_sha256(local)
            links.append(Link("products/export/model", True if got == want else None,
                              "the local serving artifact is this version" if got == want else
                              f"the local serving artifact is another model (sha256 {got[:12]})"))
    stages = data["dvc"]["stages"]
    if not stages:
        links.append(Link("dvc.lock", None, "the build recorded no dvc.lock"))
    cache = versioning.cache_dir(root)
    now = _workspace_lock(root)
    for entry in stages.values():
        for path, md5 in entry["outs"].items():
            links.append(_output_link(root, cache, path, md5, now))
    raw = {p: m for e in stages.values() for p, m in e["deps"].items() if p.startswith("data/")}
    for path, md5 in sorted(raw.items()):
        if (root / path).is_file():
            links.append(_output_link(root, cache, path, md5, now))
    nb_outs = {Path(p).name: m for e in stages.values() for p, m in e["outs"].items() if p.endswith(".ipynb")}
    for nb in data["notebooks"]:
        links.extend(_notebook_link(client, nb, nb_outs))
    return links


def _model_link(mv: Any) -> Link:
    want = mv.tags.get(integrity.HASH_TAG, "")
    if not want:
        return Link("model files", None, f"version {mv.version} has no {integrity.HASH_TAG}")
    try:
        with tempfile.TemporaryDirectory(prefix="mlnb-lineage-") as tmp:
            path = mlflow_runs.download(f"models:/{mv.name}/{mv.version}", tmp)
            got = integrity.model_sha256(path)
    except Exception as exc:  # an unreachable artifact store: not checked, not broken
        return Link("model files", None, f"could not download version {mv.version}: {type(exc).__name__}")
    return Link("model files", got == want, f"version {mv.version} hashes to the recorded sha256 {want[:12]}"
                if got == want else f"version {mv.version} hashes to {got[:12]}, recorded {want[:12]}")


def _notebook_link(client: Any, nb: dict[str, Any], nb_outs: dict[str, str]) -> list[Link]:
    links = []
    for artifact in nb["artifacts"]:
        want = nb_outs.get(Path(artifact).name)
        if not want:
            continue
        with tempfile.TemporaryDirectory(prefix="mlnb-lineage-") as tmp:
            try:
                path = Path(client.download_artifacts(nb["run_id"], artifact, tmp))
            except Exception as exc:
                links.append(Link(f"MLflow {artifact}", None, f"not downloadable: {type(exc).__name__}"))
                continue
            got = hashlib.md5(path.read_bytes()).hexdigest()  # DVC's content address, not for security
        links.append(Link(f"MLflow {artifact} (task {nb['task']})", got == want,
                          "is the notebook dvc.lock recorded" if got == want else
                          f"md5 {got[:12]} != dvc.lock's {want[:12]}"))
    return links


def broken(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [link for link in data.get("links", []) if link["held"] is False]
