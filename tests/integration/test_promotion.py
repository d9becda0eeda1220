"""Promotion as a checked transaction through the real CLI: kill -9 at every step, approvals, and the
nbval result a promotion policy reads (real MLflow store, real git, real nbval run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlnb.adapters.nbval import record
from mlnb.services.policy import nbval_requirement
from tests.conftest import run_mlnb
from tests.integration.test_registry import alias, audit_lines, client
from tests.registry_fixtures import MODEL_NAME, fake_builds, make_registry_project

pytestmark = pytest.mark.integration
STEPS = ["audited", "previous", "champion", "tagged"]


def moves(root: Path) -> list[dict]:
    return [r for r in audit_lines(root) if r["action"] in ("promote", "rollback")]


def assert_consistent(root: Path) -> None:
    """Aliases and audit agree: the champion is the last promotion's or rollback's version, `previous`
    its previous version, and that version carries the record (its transaction finished)."""
    last = moves(root)[-1]
    assert alias(root, "champion") == last["version"], (alias(root, "champion"), last)
    assert alias(root, "previous") == last["previous_version"]
    tags = client(root).get_model_version(MODEL_NAME, last["version"]).tags
    assert json.loads(tags["mlnb.last_promotion"])["txn"] == last["txn"]


def killed(root: Path, step: str, *args: str) -> None:
    res = run_mlnb(root, *args, env={"MLNB_FAULT_AT": step})
    assert res.returncode == 137, (step, res.returncode, res.stdout, res.stderr)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = make_registry_project(tmp_path_factory.mktemp("txn"))
    ids = fake_builds(root, [{"f1": 0.95}, {"f1": 0.97}, {"f1": 0.90, "gate": False}])
    assert run_mlnb(root, "promote", ids[0]).returncode == 0
    return root, ids


@pytest.mark.parametrize("step", STEPS)
def test_a_promotion_killed_at_each_step_is_audited_and_a_retry_finishes_it(project, step: str):
    root, (first, second, _) = project
    champion = alias(root, "champion")
    target = second if champion == "1" else first  # alternate: every step moves the champion
    before = len(moves(root))
    killed(root, step, "promote", target, "--note", f"killed at {step}")
    recorded = moves(root)
    assert len(recorded) == before + 1  # the record comes first: no alias moves without it
    new = recorded[-1]
    assert new["run_id"] == target and new["previous_version"] == champion
    assert alias(root, "champion") in (champion, new["version"])  # never a version without its record
    res = run_mlnb(root, "promote", target)  # the retry
    assert res.returncode == 0, res.stderr
    # killed after its last step (the version's tags, the commit mark) the promotion was complete
    said = "is already the champion: nothing changed" if step == "tagged" else "finished the interrupted promotion"
    assert said in res.stdout, res.stdout
    assert len(moves(root)) == before + 1  # finished, not promoted twice
    assert_consistent(root)
    assert alias(root, "champion") == new["version"]


def test_a_rollback_killed_midway_is_finished_by_its_retry(project):
    root, _ = project
    champion, previous = alias(root, "champion"), alias(root, "previous")
    killed(root, "previous", "rollback", "--note", "killed")
    res = run_mlnb(root, "rollback")
    assert res.returncode == 0 and "finished the interrupted rollback" in res.stdout, res.stdout + res.stderr
    assert (alias(root, "champion"), alias(root, "previous")) == (previous, champion)  # rolled back once
    assert_consistent(root)


def test_a_forced_registration_killed_before_its_record_is_reused_and_hashed(project):
    root, (_, _, failed) = project
    versions = len(client(root).search_model_versions(f"name = '{MODEL_NAME}'"))
    before = len(moves(root))
    killed(root, "registered", "promote", failed, "--force")
    assert len(moves(root)) == before  # registered, but nothing moved and nothing audited as a move
    mv = max(client(root).search_model_versions(f"name = '{MODEL_NAME}'"), key=lambda v: int(v.version))
    assert len(client(root).search_model_versions(f"name = '{MODEL_NAME}'")) == versions + 1
    res = run_mlnb(root, "promote", failed, "--force", "--note", "retry")
    assert res.returncode == 0, res.stderr
    assert len(client(root).search_model_versions(f"name = '{MODEL_NAME}'")) == versions + 1  # the same one
    assert alias(root, "champion") == str(mv.version)
    assert client(root).get_model_version(MODEL_NAME, str(mv.version)).tags["mlnb.artifact_sha256"]
    assert moves(root)[-1]["bypassed"] == ["gate"] and moves(root)[-1]["forced"] is True
    assert_consistent(root)


def test_approvals_by_distinct_people(tmp_path: Path):
    root = make_registry_project(tmp_path)
    (run,) = fake_builds(root, [{"f1": 0.95}])
    env = root / "env.yaml"
    env.write_text(env.read_text() + "  approvals: 2\n")
    refused = run_mlnb(root, "promote", run, env={"USER": "carol", "LOGNAME": "carol"})
    assert refused.returncode == 1 and "approvals: 0 of 2 approval(s) by people other than carol" in refused.stderr
    assert "[FAIL] approvals: NOT held" in refused.stdout and "[ok  ] gate: held" in refused.stdout
    for who in ("alice", "alice", "carol"):  # twice the same person; and the promoter herself
        res = run_mlnb(root, "approve", run, "--note", "looks good", env={"USER": who, "LOGNAME": who})
        assert res.returncode == 0 and f"approved run {run} as {who}" in res.stdout, res.stderr
    refused = run_mlnb(root, "promote", run, env={"USER": "carol", "LOGNAME": "carol"})
    assert refused.returncode == 1 and "1 of 2 approval(s) by people other than carol (alice)" in refused.stderr
    assert run_mlnb(root, "approve", run, env={"USER": "bob", "LOGNAME": "bob"}).returncode == 0
    res = run_mlnb(root, "promote", run, env={"USER": "carol", "LOGNAME": "carol"})
    assert res.returncode == 0, res.stderr
    assert "2 of 2 approval(s) by people other than carol (alice, bob)" in res.stdout
    assert [r["action"] for r in audit_lines(root)] == ["refused", "approve", "approve", "approve", "refused",
                                                        "approve", "promote"]
    bad = run_mlnb(root, "approve", "nope")
    assert bad.returncode == 2 and "run id: expected 32 lowercase hex digits" in bad.stderr


def test_nbval_results_are_recorded_per_commit_and_read_by_the_policy(tiny_project: Path):
    import subprocess

    root = tiny_project
    (root / "env.ci.yaml").write_text((root / "env.yaml").read_text())
    (root / ".gitignore").write_text("/products/\n/.mlnb/\n/mlflow.db\n/mlartifacts/\n")  # as a project has
    assert run_mlnb(root, "nbval", "bless").returncode == 0
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "refs"], cwd=root,
                   check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    tags = {"mlnb.git_commit": head}
    assert not nbval_requirement(root, tags, True).held  # nothing ran at this commit yet
    res = run_mlnb(root, "nbval", "check")
    assert res.returncode == 0, res.stdout + res.stderr
    result = record.read(root, head)
    assert result["passed"] and result["clean"] and result["references"] == ["first", "second"]
    req = nbval_requirement(root, tags, True)
    assert req.held and f"2 reference(s) passed at commit {head[:12]}" in req.detail
    assert not nbval_requirement(root, {"mlnb.git_commit": "0" * 40}, True).held  # another commit: no
    ci = root / "env.ci.yaml"
    ci.write_text(ci.read_text().replace("value: 1", "value: 2"))
    res = run_mlnb(root, "nbval", "check")  # a local edit that changes the first task's output
    assert res.returncode == 1
    result = record.read(root, head)
    assert not result["passed"] and not result["clean"] and result["changed"] == ["env.ci.yaml"]
    assert "nbval ran at commit" in nbval_requirement(root, tags, True).detail
