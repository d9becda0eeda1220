"""Shared fixtures: a scratch copy of the example project and a tiny synthetic project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
PROJECT_FILES = ("pipeline.yaml", "params.yaml", "env.yaml", "env.ci.yaml", "tests/nbval", "notebooks", "data/schema.yaml", "data/raw", ".gitignore",
                 "dvc.yaml", ".dvc/config", ".dvc/.gitignore", ".dvcignore", "data/raw.dvc", "data/.gitignore")
MLNB = [sys.executable, "-m", "mlnb.cli"]

os.environ.update({"PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "true",
                   "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1"})
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("MLNB_DVC_REMOTE", None)


def copy_project(dest: Path) -> Path:
    """A copy of the example project (notebooks, spec, env, data) in ``dest``, as a git repo."""
    for rel in PROJECT_FILES:
        src = REPO / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel, follow_symlinks=False)  # env.yaml is a symlink to params.yaml
    git_init(dest)
    return dest


def git_init(path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "add", "-A")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "init")


def run_mlnb(cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the real ``mlnb`` CLI in a subprocess (fresh interpreter, real kernels)."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([*MLNB, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def write_notebook(path: Path, cells: list[tuple[str, str]]) -> Path:
    """Write a minimal notebook; cells are (kind, source) with kind in code|params|markdown."""
    nb_cells = []
    for i, (kind, src) in enumerate(cells):
        cell = {"cell_type": "markdown" if kind == "markdown" else "code", "id": f"c{i}", "metadata": {},
                "source": src}
        if kind != "markdown":
            cell.update(outputs=[], execution_count=None)
        if kind == "params":
            cell["metadata"]["tags"] = ["parameters"]
        nb_cells.append(cell)
    nb = {"cells": nb_cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1))
    return path


@pytest.fixture
def tiny_project(tmp_path: Path) -> Path:
    """Two quick tasks (``first`` -> ``second``) with no heavy imports: fast fault tests."""
    return make_tiny_project(tmp_path)


def make_tiny_project(base: Path) -> Path:
    """``base/tiny``: the tiny project, as a git repo."""
    root = base / "tiny"
    write_notebook(root / "notebooks/first.ipynb", [
        ("params", "upstream = None\nproduct = None\nvalue = 1"),
        ("code", "from pathlib import Path\nPath(product['data']).write_text(str(value))\nprint('first wrote', value)"),
    ])
    write_notebook(root / "notebooks/second.ipynb", [
        ("params", "upstream = ['first']\nproduct = None\nmode = 'ok'"),
        ("code", "from pathlib import Path\nx = int(Path(upstream['first']['data']).read_text())"),
        ("code", "import os, signal\nif mode == 'raise':\n    raise ValueError(f'bad value {x}')\n"
                 "if mode == 'kill':\n    os.kill(os.getpid(), signal.SIGKILL)"),
        ("code", "Path(product['data']).write_text(str(x * 2))\nprint('second wrote', x * 2)"),
    ])
    (root / "env.yaml").write_text("first:\n  value: 1\nsecond:\n  mode: ok\nmlflow:\n  experiment: tiny\n")
    (root / "pipeline.yaml").write_text(
        "tasks:\n"
        "  - source: notebooks/first.ipynb\n"
        "    product: {nb: products/first/first.ipynb, data: products/first/data.txt}\n"
        "    params: {value: '{{first.value}}'}\n"
        "  - source: notebooks/second.ipynb\n"
        "    product: {nb: products/second/second.ipynb, data: products/second/data.txt}\n"
        "    params: {mode: '{{second.mode}}'}\n")
    git_init(root)
    return root
