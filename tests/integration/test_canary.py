"""`mlnb canary start|promote|abort` through the installed CLI on a real MLflow registry: the promotion policy
guards the challenger alias, every step is audited before its alias moves, and promote is `mlnb promote`'s
transaction (the status figures are tested against a live service in test_serve_challenger)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_mlnb
from tests.integration.test_registry import alias, audit_lines
from tests.registry_fixtures import fake_builds, make_registry_project

pytestmark = pytest.mark.integration


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, list[str]]:
    root = make_registry_project(tmp_path)
    ids = fake_builds(root, [{"f1": 0.95}, {"f1": 0.97}, {"f1": 0.90, "gate": False}])
    assert run_mlnb(root, "promote", ids[0]).returncode == 0
    return root, ids


def test_start_abort_start_promote(project) -> None:
    root, (first, second, failed) = project
    res = run_mlnb(root, "canary", "start", failed)
    assert res.returncode != 0 and "no canary" in res.stderr and alias(root, "challenger") is None
    assert audit_lines(root)[-1]["action"] == "refused" and audit_lines(root)[-1]["reason"].startswith("canary: ")
    res = run_mlnb(root, "canary", "start", first)
    assert res.returncode != 0 and "is the champion already" in res.stderr

    res = run_mlnb(root, "canary", "start", second, "--note", "try C=2")
    assert res.returncode == 0, res.stderr
    assert "is the challenger" in res.stdout and alias(root, "challenger") == "2" and alias(root, "champion") == "1"
    last = audit_lines(root)[-1]
    assert (last["action"], last["version"], last["previous_version"], last["note"]) == ("canary_start", "2", "1",
                                                                                         "try C=2")
    again = run_mlnb(root, "canary", "start", second)
    assert again.returncode == 0 and "is the challenger already" in again.stdout
    assert len([r for r in audit_lines(root) if r["action"] == "canary_start"]) == 1

    res = run_mlnb(root, "canary", "abort", "--note", "worse latency")
    assert res.returncode == 0 and alias(root, "challenger") is None and alias(root, "champion") == "1"
    assert audit_lines(root)[-1]["action"] == "canary_abort"
    res = run_mlnb(root, "canary", "abort")
    assert res.returncode != 0 and "no canary running" in res.stderr

    assert run_mlnb(root, "canary", "start", second).returncode == 0
    res = run_mlnb(root, "canary", "promote", "--note", "looks good")
    assert res.returncode == 0, res.stderr
    assert "version 2 is now the champion" in res.stdout
    assert (alias(root, "champion"), alias(root, "previous"), alias(root, "challenger")) == ("2", "1", None)
    actions = [r["action"] for r in audit_lines(root)]
    assert actions[-2:] == ["promote", "canary_promote"]  # the promotion's own record, then the canary's end
    assert "canary_promote" in run_mlnb(root, "promotions").stdout
