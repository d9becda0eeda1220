"""Promotion through the real CLI on a real MLflow store: aliases, refusals, audit, concurrency."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_mlnb
from tests.registry_fixtures import MODEL_NAME, fake_builds, make_registry_project

pytestmark = pytest.mark.integration


def client(root: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def alias(root: Path, name: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client(root).get_model_version_by_alias(MODEL_NAME, name).version)
    except MlflowException:
        return None


def audit_lines(root: Path) -> list[dict]:
    path = root / "promotions.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = make_registry_project(tmp_path_factory.mktemp("registry"))
    ids = fake_builds(root, [{"f1": 0.95}, {"f1": 0.97}, {"f1": 0.90, "gate": False}])
    return root, ids


def test_promote_moves_champion_and_previous_and_audits(project):
    root, (first, second, _) = project
    res = run_mlnb(root, "promote", first, "--note", "first model")
    assert res.returncode == 0, res.stderr
    assert alias(root, "champion") == "1" and alias(root, "previous") is None
    res = run_mlnb(root, "promote", second, "--note", "better F1")
    assert res.returncode == 0, res.stderr
    assert "version 2 is now the champion (was version 1)" in res.stdout
    assert "f1 +0.0200" in res.stdout
    assert (alias(root, "champion"), alias(root, "previous")) == ("2", "1")
    rec = audit_lines(root)[-1]
    assert rec["action"] == "promote" and rec["run_id"] == second and rec["version"] == "2"
    assert rec["previous_version"] == "1" and rec["note"] == "better F1" and rec["user"]
    assert rec["git_commit"] == f"{1:040x}" and rec["deltas"] == {"f1": 0.02, "roc_auc": 0.02}
    tags = client(root).get_model_version(MODEL_NAME, "2").tags
    assert tags["mlnb.promoted_by"] == rec["user"] and tags["mlnb.promotion_note"] == "better F1"
    assert json.loads(tags["mlnb.last_promotion"]) == rec

    before = len(audit_lines(root))
    res = run_mlnb(root, "promote", second)  # idempotent: says so, changes nothing
    assert res.returncode == 0 and "already the champion: nothing changed" in res.stdout
    assert (alias(root, "champion"), alias(root, "previous")) == ("2", "1") and len(audit_lines(root)) == before


def test_gate_failed_run_is_refused_with_the_miss_then_forced(project):
    root, (_, _, failed) = project
    champion_before = alias(root, "champion")
    res = run_mlnb(root, "promote", failed)
    assert res.returncode == 1
    assert "not promoted: the gate failed: candidate F1 0.9000 < champion F1 0.9900 + gate.min_delta 0.0200 " \
           "(missed by 0.1100); use --force" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and alias(root, "champion") == champion_before
    assert audit_lines(root)[-1]["action"] == "refused" and audit_lines(root)[-1]["run_id"] == failed

    res = run_mlnb(root, "promote", failed, "--force", "--note", "hotfix")
    assert res.returncode == 0, res.stderr
    version = alias(root, "champion")
    assert version not in (None, champion_before) and alias(root, "previous") == champion_before
    mv = client(root).get_model_version(MODEL_NAME, version)  # its trained model, registered now
    assert mv.tags["mlnb.build_run_id"] == failed and mv.tags["mlnb.promotion_forced"] == "true"
    assert audit_lines(root)[-1]["forced"] is True

    res = run_mlnb(root, "rollback", "--note", "undo hotfix")
    assert res.returncode == 0, res.stderr
    assert (alias(root, "champion"), alias(root, "previous")) == (champion_before, version)
    assert audit_lines(root)[-1]["action"] == "rollback"
    res = run_mlnb(root, "promotions")
    assert res.returncode == 0 and "undo hotfix" in res.stdout and "refused" in res.stdout


@pytest.mark.parametrize("run_id, code, message", [
    ("../../etc/passwd", 2, "run id: expected 32 lowercase hex digits"),
    ("ABCDEF0123456789ABCDEF0123456789", 2, "run id: expected 32 lowercase hex digits"),
    ("0123456789abcdef0123456789abcdef", 2, "run 0123456789abcdef0123456789abcdef: no such MLflow run"),
])
def test_bad_run_ids_are_one_line_errors(project, run_id: str, code: int, message: str):
    root, _ = project
    before = audit_lines(root)
    res = run_mlnb(root, "promote", run_id)
    assert res.returncode == code and message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert audit_lines(root) == before  # a bad id is no refusal: nothing audited


def test_a_task_run_is_not_a_build(project):
    root, (first, _, _) = project
    child = client(root).search_runs([client(root).get_run(first).info.experiment_id],
                                     f"tags.mlflow.parentRunId = '{first}'")[0].info.run_id
    res = run_mlnb(root, "promote", child)
    assert res.returncode == 2 and "not a build run of this project" in res.stderr


def test_ten_concurrent_promotions_end_consistent(tmp_path: Path):
    root = make_registry_project(tmp_path)
    ids = fake_builds(root, [{"f1": 0.90 + i / 200} for i in range(10)])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-m", "mlnb.cli", "promote", run_id, "--note", f"p{i}"], cwd=root,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, run_id in enumerate(ids)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    records = audit_lines(root)
    assert len(records) == 10 and sorted(r["run_id"] for r in records) == sorted(ids)
    # serialised: each promotion saw the champion the one before it left
    assert records[0]["previous_version"] is None
    for before, after in itertools.pairwise(records):
        assert after["previous_version"] == before["version"]
    assert alias(root, "champion") == records[-1]["version"]
    assert alias(root, "previous") == records[-2]["version"]
    c = client(root)
    for rec in records:
        assert json.loads(c.get_model_version(MODEL_NAME, rec["version"]).tags["mlnb.last_promotion"]) == rec
