"""`mlnb init` the user's way: the installed CLI in a fresh directory, then a build of what it wrote."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import MLNB, REPO, git_init, run_mlnb

pytestmark = pytest.mark.integration


def git_status(root: Path) -> list[str]:
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=root, check=True,
                         capture_output=True, text=True).stdout
    return sorted(line[3:] for line in out.splitlines())


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_init_then_build_is_green_and_leaves_git_clean(tmp_path: Path) -> None:
    started = time.monotonic()
    result = run_mlnb(tmp_path, "init", "churn model")
    assert result.returncode == 0, result.stderr
    root = tmp_path / "churn model"
    assert "mlflow.db, mlartifacts/" in result.stdout and ".mlnb/" in result.stdout  # announced
    assert "next: cd churn model && mlnb build --no-dvc" in result.stdout
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    wrote = git_status(root)
    assert {"pipeline.yaml", "params.yaml", "env.yaml", "dvc.yaml", "data/raw/sample.csv", "data/schema.yaml",
            "notebooks/load.ipynb", "notebooks/validate.ipynb", "notebooks/train.ipynb", "notebooks/evaluate.ipynb",
            "notebooks/export.ipynb", ".github/workflows/mlnb.yml", ".gitlab-ci.yml", "Dockerfile", "Makefile",
            ".gitignore", ".dvc/config", ".dvcignore", "README.md"} <= set(wrote)
    assert "mlflow:\n  experiment: churn-model\n  model_name: churn-model-model" in (root / "params.yaml").read_text()
    shutil.rmtree(root / ".git")
    git_init(root)

    build = subprocess.run(["make", "build", f"MLNB={' '.join(MLNB)}"], cwd=root, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)  # mlnb build --no-dvc; verdict
    assert build.returncode == 0, build.stdout + build.stderr
    assert "gate: promotable: no champion yet" in build.stdout, build.stdout
    said = [ln for ln in build.stdout.splitlines() if ln.strip() and not ln.startswith("make[")]  # under make test
    assert said[-1].startswith("promotable"), build.stdout  # mlnb verdict
    assert (root / "products/export/model/MLmodel").is_file()
    assert git_status(root) == []  # products, the MLflow store and .mlnb/ are all git-ignored
    assert run_mlnb(root, "dvc", "sync", "--check").returncode == 0
    tested = subprocess.run(["make", "test", f"MLNB={' '.join(MLNB)}"], cwd=root, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)  # sync check; a forced build
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "gate: " in tested.stdout + tested.stderr
    assert git_status(root) == []
    makefile = (root / "Makefile").read_text()  # `make setup` installs the mlnb this project was made with
    assert "INSTALL_MLNB ?= mlnb @ file://" in makefile or "INSTALL_MLNB ?= mlnb==" in makefile
    print(f"mlnb init && make build && make test: {time.monotonic() - started:.1f} s")


def test_init_refuses_a_non_empty_directory_and_force_says_what_it_overwrites(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "pipeline.yaml").write_text("tasks: []\n")
    (root / "notes.txt").write_text("mine")
    line = one_line(run_mlnb(tmp_path, "init", "proj"))
    assert "not empty (2 entries)" in line and "would overwrite pipeline.yaml" in line
    assert sorted(p.name for p in root.iterdir()) == ["notes.txt", "pipeline.yaml"]
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]  # no temp directory left behind

    forced = run_mlnb(tmp_path, "init", "--force", "proj")
    assert forced.returncode == 0, forced.stderr
    assert "overwrote (1): pipeline.yaml" in forced.stdout
    assert (root / "notes.txt").read_text() == "mine" and "notebooks/load.ipynb" in (root / "pipeline.yaml").read_text()

    (tmp_path / "afile").write_text("x")
    assert "not a directory" in one_line(run_mlnb(tmp_path, "init", "afile"))
    assert "no pipeline.yaml" in one_line(run_mlnb(tmp_path / "proj" / "data", "init", "--from-ploomber"))


def test_from_ploomber_adds_mlnb_files_and_leaves_the_tasks_byte_identical(tmp_path: Path) -> None:
    root = tmp_path / "plo"
    shutil.copytree(REPO / "tests/compat/projects/scripts", root)
    tasks = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.iterdir()}
    git_init(root)
    result = run_mlnb(root, "init", "--from-ploomber")
    assert result.returncode == 0, result.stderr
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.iterdir() if p.name in tasks} == tasks
    assert git_status(root) == [".github/workflows/mlnb.yml", ".github/workflows/monitor.yml", ".gitignore",
                                ".gitlab-ci.yml", "Dockerfile", "Makefile", "env.yaml", "params.yaml",
                                "scripts/monitor-ci.sh"]
    again = run_mlnb(root, "init", "--from-ploomber")
    assert again.returncode == 0 and "wrote" not in again.stdout and "appended" not in again.stdout, again.stdout
