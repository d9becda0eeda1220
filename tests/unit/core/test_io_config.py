"""Atomic writes and env overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlnb.core.config import apply_overrides, parse_override
from mlnb.core.io import atomic_dir, atomic_write, inside, read_json, write_json
from mlnb.errors import EnvError, UnsafePathError


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_json(target, {"f1": 0.9})
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write('{"f1": 0.')
        raise RuntimeError("crash mid-write")
    assert read_json(target) == {"f1": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp file left behind


def test_atomic_dir_replaces_whole_tree(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "MLmodel").write_text("v1")
    with pytest.raises(ValueError), atomic_dir(target) as tmp:
        (tmp / "MLmodel").write_text("v2-partial")
        raise ValueError
    assert (target / "MLmodel").read_text() == "v1"
    with atomic_dir(target) as tmp:
        (tmp / "other").write_text("v3")
    assert sorted(p.name for p in target.iterdir()) == ["other"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_inside_refuses_escape(tmp_path: Path) -> None:
    assert inside(tmp_path, "a/b") == (tmp_path / "a/b").resolve()
    with pytest.raises(UnsafePathError, match="outside the project"):
        inside(tmp_path, "../x")


def test_overrides_parse_yaml_scalars() -> None:
    assert parse_override("train.C=0.5") == ("train.C", 0.5)
    assert parse_override("train.model=random_forest") == ("train.model", "random_forest")
    env = {"train": {"C": 1.0, "max_iter": 10, "flag": True}}
    out = apply_overrides(env, ["train.C=3", "train.max_iter=20"])
    assert out["train"] == {"C": 3.0, "max_iter": 20, "flag": True} and env["train"]["C"] == 1.0
    with pytest.raises(EnvError, match="expected int like 10, got float"):
        apply_overrides(env, ["train.max_iter=1.5"])
    with pytest.raises(EnvError, match="expected bool like True, got int"):
        apply_overrides(env, ["train.flag=1"])
    with pytest.raises(EnvError, match="is a section"):
        apply_overrides(env, ["train=1"])
    with pytest.raises(EnvError, match="expected KEY=VALUE"):
        apply_overrides(env, ["train.C"])
