"""The promotion policy: each requirement failing alone, and the policy's own configuration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from mlnb.adapters.dvc.objects import file_md5, object_path
from mlnb.adapters.nbval.record import results_dir
from mlnb.core.io import write_json
from mlnb.errors import EnvError
from mlnb.services import policy

SHA = "ab" * 20
OUT = "products/train/model.joblib"


class Client:
    """The one MLflow call the policy makes: the build run's dvc.lock artifact."""

    def __init__(self, lock: dict | None) -> None:
        self.lock = lock

    def download_artifacts(self, run_id: str, path: str, dst: str) -> str:
        from mlflow.exceptions import MlflowException

        if self.lock is None:
            raise MlflowException("no such artifact")
        (Path(dst) / path).write_text(yaml.safe_dump(self.lock))
        return str(Path(dst) / path)


def make_project(tmp_path: Path) -> tuple[Path, dict]:
    """A DVC project with one recorded output, pushed to a local remote, and a passing nbval record."""
    root = tmp_path / "proj"
    (root / ".dvc").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    remote = tmp_path / "remote"
    (root / ".dvc" / "config").write_text(f"[core]\n    remote = store\n['remote \"store\"']\n    url = {remote}\n")
    (root / OUT).parent.mkdir(parents=True)
    (root / OUT).write_bytes(b"model bytes")
    md5 = file_md5(root / OUT)
    obj = object_path(remote, md5)
    obj.parent.mkdir(parents=True)
    shutil.copy(root / OUT, obj)
    write_json(results_dir(root) / f"{SHA}.json", {"commit": SHA, "clean": True, "passed": True,
                                                    "references": ["train"], "time": "2026-01-01T00:00:00"})
    lock = {"schema": "2.0", "stages": {"train": {"cmd": "mlnb run train", "outs": [{"path": OUT, "md5": md5}]}}}
    return root, lock


def run_with(**tags: str) -> SimpleNamespace:
    base = {"mlnb.gate.verdict": "promotable", "mlnb.gate_reason": "no champion yet", "mlnb.git_commit": SHA,
            "mlnb.git_clean": "true", "mlnb.dvc.recorded": "train",
            policy.approval_tag("alice"): json.dumps({"user": "alice", "time": "t"})}
    base.update(tags)
    return SimpleNamespace(data=SimpleNamespace(tags={k: v for k, v in base.items() if v is not None}),
                           info=SimpleNamespace(run_id="f" * 32))


POLICY = policy.Policy(approvals=1)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path)[0]


def lock_of(root: Path) -> dict:
    return {"schema": "2.0", "stages": {"train": {"cmd": "mlnb run train",
                                                  "outs": [{"path": OUT, "md5": file_md5(root / OUT)}]}}}


def test_everything_held(project: Path) -> None:
    reqs = policy.check(project, Client(lock_of(project)), run_with(), POLICY, "bob")
    assert [(r.name, r.held) for r in reqs] == [("gate", True), ("gate_settings", True), ("clean_tree", True),
                                                ("dvc", True), ("nbval", True), ("approvals", True)]
    assert policy.refusal(reqs) is None
    assert "1 output(s) in dvc.lock, all in remote 'store'" in reqs[3].detail


@pytest.mark.parametrize(("tags", "name", "detail"), [
    ({"mlnb.gate.verdict": "not_promotable", "mlnb.gate_reason": "cut 0%"}, "gate",
     "the gate says not promotable: cut 0%"),
    ({"mlnb.gate.verdict": None, "mlnb.failed_task": "train"}, "gate", "the build has no gate result (task train"),
    ({"mlnb.gate.config_changes": "gate.min_delta: 0.02 -> -1.0"}, "gate_settings",
     "differ from the committed params.yaml: gate.min_delta: 0.02 -> -1.0"),
    ({"mlnb.git_clean": "false", "mlnb.git_changed": "notebooks/train.ipynb"}, "clean_tree",
     "with local edits: notebooks/train.ipynb"),
    ({"mlnb.dvc.recorded": None, "mlnb.dvc.note": "not recorded in DVC: built with --env-file/-p overrides"},
     "dvc", "built with --env-file/-p overrides"),
    ({policy.approval_tag("alice"): None}, "approvals", "0 of 1 approval(s) by people other than bob"),
])
def test_each_requirement_failing_alone(project: Path, tags: dict, name: str, detail: str) -> None:
    reqs = policy.check(project, Client(lock_of(project)), run_with(**tags), POLICY, "bob")
    bad = policy.blocking(reqs)
    assert [r.name for r in bad] == [name]
    assert detail in bad[0].detail
    assert policy.refusal(reqs).count(detail) == 1


def test_the_promoter_does_not_approve_their_own_promotion(project: Path) -> None:
    reqs = policy.check(project, Client(lock_of(project)), run_with(), POLICY, "alice")
    assert [r.name for r in policy.blocking(reqs)] == ["approvals"]


def test_dvc_not_pushed_or_lock_missing(project: Path, tmp_path: Path) -> None:
    lock = lock_of(project)
    shutil.rmtree(tmp_path / "remote")
    reqs = policy.check(project, Client(lock), run_with(), POLICY, "bob")
    (dvc,) = policy.blocking(reqs)
    assert dvc.name == "dvc" and "not pushed: 1 object(s) missing from remote 'store'" in dvc.detail
    assert "run `mlnb push`" in dvc.detail
    reqs = policy.check(project, Client(None), run_with(), POLICY, "bob")
    assert "the build's dvc.lock is not on its MLflow run" in policy.blocking(reqs)[0].detail
    shutil.rmtree(project / ".dvc")
    reqs = policy.check(project, Client(lock), run_with(), POLICY, "bob")
    assert "the project does not use DVC" in policy.blocking(reqs)[0].detail


def test_nbval_of_another_commit_or_a_failed_run_is_not_held(project: Path) -> None:
    other = "cd" * 20
    reqs = policy.check(project, Client(lock_of(project)), run_with(**{"mlnb.git_commit": other}),
                        POLICY, "bob")
    (bad,) = policy.blocking(reqs)
    assert bad.name == "nbval" and "no nbval run recorded at commit cdcdcdcdcdcd" in bad.detail
    write_json(results_dir(project) / f"{SHA}.json", {"commit": SHA, "clean": True, "passed": False,
                                                      "summary": "1 of 2 references match"})
    reqs = policy.check(project, Client(lock_of(project)), run_with(), POLICY, "bob")
    (bad,) = policy.blocking(reqs)
    assert bad.name == "nbval" and "nbval failed at commit abababababab: 1 of 2 references match" in bad.detail


def test_a_requirement_not_required_never_blocks(project: Path) -> None:
    lax = policy.Policy(gate=False, clean_tree=False, dvc=False, nbval=False)
    run = run_with(**{"mlnb.gate.verdict": "failed", "mlnb.git_clean": "false", "mlnb.dvc.recorded": None})
    reqs = policy.check(project, Client(None), run, lax, "bob")
    assert policy.blocking(reqs) == [] and not reqs[0].held and not reqs[0].required


@pytest.mark.parametrize(("section", "message"), [
    ({"gate": "yes"}, "promotion.gate: expected true or false, got 'yes'"),
    ({"approvals": -1}, "promotion.approvals: expected a whole number >= 0, got -1"),
    ({"reviewers": 2}, "promotion.reviewers: unknown key"),
    ([1], "promotion: expected a mapping"),
])
def test_policy_config_errors(section: object, message: str) -> None:
    with pytest.raises(EnvError, match="^params.yaml: " + message.replace("(", r"\(").replace(")", r"\)")):
        policy.Policy.from_env({"promotion": section})
    assert policy.Policy.from_env({}) == policy.Policy()  # no section: everything required, no approvals
