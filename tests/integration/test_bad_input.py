"""Smaller hardening cases: each is one line and exit 2 (or a refusal), never a traceback, and nothing
outside what mlnb owns is deleted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import make_tiny_project, run_mlnb, write_notebook

pytestmark = pytest.mark.integration


def one_line(result, code: int = 2) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.mark.parametrize("content, message", [
    (b'{"cells": [], "x": "caf\xe9"}', "not UTF-8"),
    (b'{"cells": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
], ids=["latin-1", "deep"])
def test_a_broken_task_notebook_is_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    root = make_tiny_project(tmp_path)
    (root / "notebooks/second.ipynb").write_bytes(content)
    assert message in one_line(run_mlnb(root, "status"))


def test_a_nul_in_a_product_path_is_one_line(tmp_path: Path) -> None:
    root = make_tiny_project(tmp_path)
    spec = root / "pipeline.yaml"
    spec.write_text(spec.read_text().replace("products/first/data.txt", '"products/first/da\\x00ta.txt"'))
    assert "NUL character" in one_line(run_mlnb(root, "status"))


def test_quarantine_never_deletes_through_a_symlink(tmp_path: Path) -> None:
    root = make_tiny_project(tmp_path)
    outside = tmp_path / "outside"
    (outside / "second").mkdir(parents=True)
    (outside / "second" / "precious.txt").write_text("keep me")
    (root / "products").mkdir()
    (root / "products" / "_failed").symlink_to(outside, target_is_directory=True)
    (root / "env.yaml").write_text((root / "env.yaml").read_text().replace("mode: ok", "mode: raise"))
    result = run_mlnb(root, "build", "--no-dvc")
    assert result.returncode != 0
    assert "products/_failed is a symbolic link" in result.stderr, result.stderr
    assert (outside / "second" / "precious.txt").read_text() == "keep me"


def test_convert_force_keeps_a_hand_written_notebook_and_long_headings_are_names(tmp_path: Path) -> None:
    src = write_notebook(tmp_path / "big.ipynb", [
        ("markdown", "## " + "load the data " * 400), ("code", "x = 1"),
        ("markdown", "## second"), ("code", "y = x + 1")])
    out = tmp_path / "proj"
    result = run_mlnb(tmp_path, "convert", str(src), "--out", str(out))
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (out / "notebooks").iterdir())
    assert all(len(n) < 80 for n in names) and "second.ipynb" in names
    mine = write_notebook(out / "notebooks" / "mine.ipynb", [("code", "print('hand-written')")])
    result = run_mlnb(tmp_path, "convert", str(src), "--out", str(out), "--force")
    assert result.returncode == 0, result.stderr
    assert json.loads(mine.read_text())["cells"][0]["source"] == "print('hand-written')"
    assert "kept notebooks/mine.ipynb" in result.stdout + result.stderr
