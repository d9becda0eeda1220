"""A tracking URI's credentials never reach the terminal or a log line: every command that talks to
MLflow is run against an unreachable server whose URI carries a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlnb.errors import redact
from tests.conftest import make_tiny_project, run_mlnb
from tests.serving_fixtures import free_port

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-PASSWORD"


@pytest.mark.parametrize("args", [["runs"], ["rollback"], ["promote", "0" * 32], ["serve", "--port", "0"],
                                  ["fetch-model", "models:/tiny@champion", "out"]])
def test_no_command_prints_the_password(tmp_path: Path, args: list[str]) -> None:
    root = make_tiny_project(tmp_path)
    (root / "env.yaml").write_text((root / "env.yaml").read_text().replace("experiment: tiny",
                                                                          "experiment: tiny\n  model_name: tiny"))
    env = {"MLFLOW_TRACKING_URI": f"http://alice:{SECRET}@127.0.0.1:{free_port()}/",
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
    result = run_mlnb(root, *args, env=env, timeout=120)
    assert result.returncode != 0
    assert SECRET not in result.stdout + result.stderr, result.stderr
    assert "alice:***@127.0.0.1" in result.stderr or "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("text, shown", [
    ("http://alice:pw@host/api", "http://alice:***@host/api"), ("https://token@h.io/x", "https://***@h.io/x"),
    ("postgresql://u:p@db:5432/m, s3://k:s@b", "postgresql://u:***@db:5432/m, s3://k:***@b"),
    ("sqlite:///tmp/mlflow.db", "sqlite:///tmp/mlflow.db"), ("http://h:5000/#/x", "http://h:5000/#/x"),
])
def test_redact(text: str, shown: str) -> None:
    assert redact(text) == shown
