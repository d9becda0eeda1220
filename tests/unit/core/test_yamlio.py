"""Bounded YAML: alias bombs, deep nesting, self-referring aliases, huge and non-UTF-8 files are one
line each, before anything walks the document; ordinary aliases still work."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlnb.core.yamlio import MAX_NODES, read_yaml
from mlnb.errors import EnvError, UserInputError
from tests.conftest import make_tiny_project, run_mlnb


def bomb(levels: int = 9) -> str:
    """182 bytes of aliases that expand to 9**levels leaves."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, message", [
    (bomb(), f"aliases expand to more than {MAX_NODES:,} values"),
    ("x: " + "[" * 10_000 + "]" * 10_000, "nested deeper than 64 levels"),
    ("a: &a [1, *a]\n", "an alias refers to the node that contains it"),
    ("a: [1,\n", "line 2: invalid YAML"),
])
def test_refused_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "env.yaml"
    path.write_text(text)
    with pytest.raises(EnvError) as err:
        read_yaml(path, EnvError)
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_size_and_encoding(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("k: " + "x" * (2 ** 20) + "\n")
    with pytest.raises(UserInputError, match="larger than 1024 KiB"):
        read_yaml(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(UserInputError, match="not UTF-8"):
        read_yaml(latin)


def test_ordinary_aliases_and_a_bomb_just_under_the_limit_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {C: 1.0, max_iter: 100}\ntrain: *b\nlist: [1, 2]\n")
    assert read_yaml(path) == {"base": {"C": 1.0, "max_iter": 100}, "train": {"C": 1.0, "max_iter": 100},
                               "list": [1, 2]}
    path.write_text(bomb(4))  # 9**4 leaves: big, but within bounds
    assert len(read_yaml(path)["a4"]) == 9


def test_status_answers_a_bomb_in_env_and_spec_in_one_line(tmp_path: Path) -> None:
    root = make_tiny_project(tmp_path)
    env = (root / "env.yaml").read_text()
    (root / "env.yaml").write_text(env + bomb())
    result = run_mlnb(root, "status", timeout=60)
    assert result.returncode == 2 and "aliases expand" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    (root / "env.yaml").write_text(env)
    spec = (root / "pipeline.yaml").read_text()
    (root / "pipeline.yaml").write_text(spec + bomb().replace("a0:", "x-bomb:\n  a0:").replace("\na", "\n  a"))
    try:
        result = run_mlnb(root, "status", timeout=60)
    except subprocess.TimeoutExpired:  # pragma: no cover - what the bound prevents
        pytest.fail("mlnb status walked the bomb")
    assert result.returncode == 2 and "pipeline.yaml: its aliases expand" in result.stderr, result.stderr
