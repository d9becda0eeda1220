"""scripts/lab (what `make lab` runs) passes --allow-root to Jupyter only when run as root.

The script runs for real; the venv it is pointed at holds a `jupyter` that prints its arguments
(the real server start is tests/e2e/test_lab_start.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


@pytest.fixture
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    (venv / "bin").mkdir()
    (venv / "bin" / "jupyter").write_text('#!/bin/sh\nprintf "%s\\n" "$(id -u)" "$@"\n')
    (venv / "bin" / "jupyter").chmod(0o755)
    for path in (venv, *venv.parents):  # nobody must reach it (pytest's base dir is private)
        if path == Path("/tmp") or path == path.parent:
            break
        path.chmod(path.stat().st_mode | 0o755)
    return venv


def run(venv: Path, prefix: list[str], script: Path = REPO / "scripts" / "lab") -> list[str]:
    out = subprocess.run([*prefix, str(script), "--port=9999"], env={**os.environ, "VENV": str(venv)},
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_as_the_current_user(venv: Path) -> None:
    uid, *args = run(venv, [])
    assert args[:2] == ["lab", "--no-browser"] and args[-1] == "--port=9999"
    assert ("--allow-root" in args) == (int(uid) == 0)


@pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"), reason="needs root to become nobody")
def test_as_a_normal_user_jupyter_keeps_its_default(venv: Path) -> None:
    # the script's own bytes, copied where nobody can reach it (a clone may sit in a private directory,
    # e.g. one made by mktemp -d)
    script = venv / "scripts" / "lab"
    script.parent.mkdir()
    shutil.copy2(REPO / "scripts" / "lab", script)
    script.parent.chmod(0o755)
    uid, *args = run(venv, AS_NOBODY, script)
    assert uid == "65534" and "--allow-root" not in args and args[-1] == "--port=9999"
