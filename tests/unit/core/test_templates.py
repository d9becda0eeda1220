"""Placeholders are plain look-ups: Jinja expressions and statements in pipeline.yaml, env.yaml or a
-p value are refused in one line before anything renders (Ploomber renders full Jinja)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_tiny_project, run_mlnb

ESCAPE = "\"{{ '..%coutside%cevil' % (47, 47) }}.txt\""
RUNS = "\"{{ cycler.__init__.__globals__.os.system('touch PWNED') }}\""


@pytest.mark.parametrize("where, payload", [
    ("product", ESCAPE), ("product", RUNS), ("params", "'{% if true %}1{% endif %}'"),
    ("env", RUNS), ("env", "'{{ range(10**9) | list }}'"), ("key", RUNS),
])
def test_jinja_is_refused_before_anything_renders(tmp_path: Path, where: str, payload: str) -> None:
    root = make_tiny_project(tmp_path)
    spec, env = root / "pipeline.yaml", root / "env.yaml"
    if where == "product":
        spec.write_text(spec.read_text().replace("products/first/data.txt", payload))
    elif where == "params":
        spec.write_text(spec.read_text().replace("'{{first.value}}'", payload))
    elif where == "env":
        env.write_text(env.read_text().replace("mode: ok", f"mode: {payload}"))
    else:
        env.write_text(env.read_text() + f"{payload}: 1\n")
    for command in (["status"], ["build", "--no-dvc"]):
        result = run_mlnb(root, *command)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert "only plain {{section.key}} placeholders" in lines[0]
    assert not (root / "PWNED").exists() and not (tmp_path / "outside").exists()
    assert not (root / "products").exists()


def test_a_jinja_override_is_refused_and_plain_placeholders_still_work(tmp_path: Path) -> None:
    root = make_tiny_project(tmp_path)
    result = run_mlnb(root, "build", "--no-dvc", "-p", "second.mode={{ cycler.__init__ }}")
    assert result.returncode == 2 and "-p second.mode" in result.stderr
    result = run_mlnb(root, "build", "--no-dvc", "-p", "first.value=3")
    assert result.returncode == 0, result.stderr
    assert (root / "products/second/data.txt").read_text() == "6"
