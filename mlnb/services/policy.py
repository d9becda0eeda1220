"""The promotion policy (``params.yaml`` ``promotion:``): what must hold before ``champion`` moves.

Each requirement is checked against what the build recorded (MLflow run tags and artifacts), the
project's DVC cache and remote, the nbval results and the approvals, and answered held / not held
with a one-line detail. ``mlnb promote`` refuses while a required one is not held; ``--force``
promotes anyway and the audit record names exactly the bypassed ones. Reads only.

Requirements (policy key -> names listed):

* ``gate``: ``gate`` (the build's verdict is ``promotable``) and ``gate_settings`` (it was reached
  with the committed gate settings: no ``-p gate.*``, no other ``--env-file``);
* ``clean_tree``: ``clean_tree``, the build ran from a commit without local edits (``dvc.lock`` and
  ``dvc.yaml``, which ``mlnb build`` writes itself, do not count);
* ``dvc``: ``dvc``, its outputs are recorded in ``dvc.lock`` and, when the project has a remote,
  the remote holds every object;
* ``nbval``: ``nbval``, the nbval references passed at the build's commit;
* ``approvals: N``: ``approvals``, N distinct people approved the build (``mlnb approve``), the
  person promoting not counted.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlnb.adapters.git import is_clean_commit
from mlnb.adapters.mlflow import runs as mlflow_runs
from mlnb.core.gate import PROMOTABLE, verdict_of
from mlnb.errors import EnvError

POLICY_KEYS = ("gate", "clean_tree", "dvc", "nbval", "approvals")
APPROVAL_TAG = "mlnb.approved_by."
DETAIL_MAX = 300


@dataclass(frozen=True)
class Policy:
    gate: bool = True
    clean_tree: bool = True
    dvc: bool = True
    nbval: bool = True
    approvals: int = 0

    @classmethod
    def from_env(cls, env: dict[str, Any], source: str = "params.yaml") -> Policy:
        section = env.get("promotion")
        if section is None:
            return cls()
        if not isinstance(section, dict):
            raise EnvError(f"{source}: promotion: expected a mapping, got {section!r}")
        for key, value in section.items():
            if key not in POLICY_KEYS:
                raise EnvError(f"{source}: promotion.{key}: unknown key (known: {', '.join(POLICY_KEYS)})")
            if key == "approvals":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise EnvError(f"{source}: promotion.approvals: expected a whole number >= 0, got {value!r}")
            elif not isinstance(value, bool):
                raise EnvError(f"{source}: promotion.{key}: expected true or false, got {value!r}")
        return cls(**section)


@dataclass(frozen=True)
class Requirement:
    name: str
    held: bool
    required: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        state = "held" if self.held else "NOT held" if self.required else "not held (not required)"
        return f"{self.name}: {state}: {self.detail}"


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= DETAIL_MAX else text[:DETAIL_MAX - 3] + "..."


def gate_requirements(tags: dict[str, str], required: bool) -> list[Requirement]:
    verdict = verdict_of(tags)
    reason = tags.get("mlnb.gate_reason", "")
    if verdict is None:
        failed = tags.get("mlnb.failed_task")
        gate = Requirement("gate", False, required, "the build has no gate result" +
                           (f" (task {failed} failed)" if failed else ""))
    else:
        said = {PROMOTABLE: "the gate says promotable", "failed": "the gate failed"}.get(
            verdict, "the gate says not promotable")
        gate = Requirement("gate", verdict == PROMOTABLE, required, " ".join(f"{said}: {reason}".split()))
    changes = tags.get("mlnb.gate.config_changes", "")
    settings = Requirement("gate_settings", not changes, required,
                           _short(f"differ from the committed params.yaml: {changes}") if changes
                           else "the committed params.yaml's")
    return [gate, settings]


def clean_tree_requirement(tags: dict[str, str], required: bool) -> Requirement:
    commit = tags.get("mlnb.git_commit", "")
    if tags.get("mlnb.git_clean") in ("true", "false"):
        clean = tags["mlnb.git_clean"] == "true"
        changed = tags.get("mlnb.git_changed", "")
    else:  # a build from before mlnb.git_clean: the commit's -dirty suffix says it
        clean, changed = is_clean_commit(commit), ""
    if not commit or commit == "unknown":
        return Requirement("clean_tree", False, required, "no git commit recorded (not a git repository?)")
    sha = commit[:40]
    if clean:
        return Requirement("clean_tree", True, required, f"built from commit {sha[:12]}, no local edits")
    return Requirement("clean_tree", False, required,
                       _short(f"built from commit {sha[:12]} with local edits" + (f": {changed}" if changed else "")))


def build_lock(client: Any, run_id: str) -> dict[str, Any] | None:
    """The ``dvc.lock`` the build recorded (its run's artifact), or None."""
    import yaml

    with tempfile.TemporaryDirectory(prefix="mlnb-lock-") as tmp:
        path = mlflow_runs.run_file(client, run_id, "dvc.lock", tmp)
        if path is None:
            return None
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return None
    return data if isinstance(data, dict) else None


def lock_entries(lock: dict[str, Any]) -> list[Any]:
    """The DVC objects a recorded ``dvc.lock`` names (every stage's outs)."""
    from mlnb.adapters.dvc.objects import Entry

    out = []
    for stage in (lock.get("stages") or {}).values():
        for item in (stage or {}).get("outs", []) if isinstance(stage, dict) else []:
            if isinstance(item, dict) and item.get("md5") and item.get("path"):
                out.append(Entry(str(item["path"]), str(item["md5"])))
    return out


def dvc_requirement(root: Path, client: Any, run: Any, required: bool) -> Requirement:
    from mlnb.adapters.dvc import objects
    from mlnb.adapters.dvc import repo as versioning

    tags = run.data.tags
    if not versioning.is_dvc_repo(root):
        return Requirement("dvc", False, required, "the project does not use DVC (no .dvc/ and dvc.yaml)")
    recorded = [s for s in tags.get("mlnb.dvc.recorded", "").split(",") if s]
    if not recorded:
        why = tags.get("mlnb.dvc.note") or "the build recorded no outputs in dvc.lock"
        return Requirement("dvc", False, required, _short(why))
    lock = build_lock(client, run.info.run_id)
    if lock is None:
        return Requirement("dvc", False, required, "the build's dvc.lock is not on its MLflow run")
    entries = lock_entries(lock)
    try:
        remote = versioning.remote(root)
    except Exception as exc:  # a broken DVC config: say so, do not crash the check
        return Requirement("dvc", False, required, _short(f"DVC remote: {exc}"))
    if remote is None:
        return Requirement("dvc", True, required, f"{len(recorded)} stage(s) recorded in dvc.lock; no remote set")
    base = remote.local_path
    if base is None:
        return Requirement("dvc", False, required, _short(f"recorded; remote {remote.url} is not a local directory, "
                                                          "so mlnb cannot see whether it holds the objects"))
    missing = objects.verify(base if base.is_absolute() else root / base, entries)
    if missing:
        return Requirement("dvc", False, required, _short(f"recorded, not pushed: {len(missing)} object(s) missing "
                                                          f"from remote {remote.name!r}, e.g. {missing[0].path} "
                                                          "(run `mlnb push`)"))
    return Requirement("dvc", True, required, f"{len(entries)} output(s) in dvc.lock, all in remote {remote.name!r}")


def nbval_requirement(root: Path, tags: dict[str, str], required: bool) -> Requirement:
    from mlnb.adapters.nbval import record

    commit = tags.get("mlnb.git_commit", "")[:40]
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        return Requirement("nbval", False, required, "no git commit recorded for the build")
    result = record.read(root, commit)
    if result is None:
        return Requirement("nbval", False, required, f"no nbval run recorded at commit {commit[:12]} "
                                                     "(run `make nbval` or `mlnb nbval check`)")
    if not result.get("clean"):
        return Requirement("nbval", False, required, f"nbval ran at commit {commit[:12]} with local edits")
    if not result.get("passed"):
        return Requirement("nbval", False, required, _short(f"nbval failed at commit {commit[:12]}: "
                                                            f"{result.get('summary', '')}"))
    return Requirement("nbval", True, required, f"{len(result.get('references', []))} reference(s) passed at "
                                                f"commit {commit[:12]} ({result.get('time', '')[:19]})")


def approvers(tags: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Who approved the build (``mlnb approve``): user -> {time, note}."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in tags.items():
        if key.startswith(APPROVAL_TAG):
            try:
                data = json.loads(value)
            except ValueError:
                continue
            if isinstance(data, dict) and isinstance(data.get("user"), str):
                out[data["user"]] = data
    return out


def approval_tag(user: str) -> str:
    return APPROVAL_TAG + re.sub(r"[^A-Za-z0-9_.\-]", "_", user)[:200]


def approvals_requirement(tags: dict[str, str], needed: int, promoter: str) -> Requirement:
    people = sorted(u for u in approvers(tags) if u != promoter)
    held = len(people) >= needed
    who = f" ({', '.join(people)})" if people else ""
    return Requirement("approvals", held, needed > 0,
                       f"{len(people)} of {needed} approval(s) by people other than {promoter}{who}")


def check(root: Path, client: Any, run: Any, policy: Policy, promoter: str) -> list[Requirement]:
    """Every requirement of ``policy`` for build ``run``, in a fixed order."""
    tags = run.data.tags
    return [*gate_requirements(tags, policy.gate), clean_tree_requirement(tags, policy.clean_tree),
            dvc_requirement(root, client, run, policy.dvc), nbval_requirement(root, tags, policy.nbval),
            approvals_requirement(tags, policy.approvals, promoter)]


def blocking(requirements: list[Requirement]) -> list[Requirement]:
    return [r for r in requirements if r.required and not r.held]


def refusal(requirements: list[Requirement]) -> str | None:
    """One line naming every required requirement that is not held, or None."""
    bad = blocking(requirements)
    if not bad:
        return None
    return "; ".join(r.detail if r.name == "gate" else f"{r.name}: {r.detail}" for r in bad)
