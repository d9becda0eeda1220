"""The Ploomber-free up-to-date check (:mod:`mlnb.adapters.ploomber.uptodate`) agrees with Ploomber's own render."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mlnb.adapters.ploomber import pipeline, uptodate
from mlnb.core.project import load_project
from tests.conftest import run_mlnb

pytestmark = pytest.mark.integration


def verdicts(root: Path) -> tuple[dict[str, bool], dict[str, bool]]:
    project = load_project(root)
    return uptodate.up_to_date(project.spec), pipeline.ploomber_up_to_date(pipeline.open_dag(project.spec,
                                                                                              project.env))


def _edit_cell(root: Path, task: str, index: int, change: Callable[[str], str]) -> None:
    path = root / f"notebooks/{task}.ipynb"
    nb = json.loads(path.read_text())
    src = nb["cells"][index]["source"]
    nb["cells"][index]["source"] = change("".join(src) if isinstance(src, list) else src)
    path.write_text(json.dumps(nb, indent=1))


MUTATIONS: dict[str, tuple[Callable[[Path], object], dict[str, bool]]] = {
    "nothing": (lambda r: None, {"first": True, "second": True}),
    "code edit": (lambda r: _edit_cell(r, "second", 3, lambda s: s + "\nprint('more')"),
                  {"first": True, "second": False}),
    "comment only": (lambda r: _edit_cell(r, "first", 1, lambda s: s + "  # a comment"),
                     {"first": False, "second": False}),
    "param": (lambda r: (r / "env.yaml").write_text(
        "first:\n  value: 1\nsecond:\n  mode: raise2\nmlflow:\n  experiment: tiny\n"),
        {"first": True, "second": False}),
    "upstream rebuilt": (lambda r: run_mlnb(r, "run", "first"), {"first": True, "second": False}),
    "product deleted": (lambda r: (r / "products/second/data.txt").unlink(), {"first": True, "second": False}),
    "metadata deleted": (lambda r: (r / "products/first/.first.ipynb.metadata").unlink(),
                         {"first": False, "second": False}),
}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_fast_check_agrees_with_ploomber(tiny_project: Path, name: str) -> None:
    assert run_mlnb(tiny_project, "build", "--no-dvc").returncode == 0
    mutate, expected = MUTATIONS[name]
    mutate(tiny_project)
    fast, ploomber = verdicts(tiny_project)
    assert ploomber == expected
    assert fast == ploomber


def test_resources_are_compared_by_content(tmp_path: Path) -> None:
    """A ``resources_`` file is hashed as Ploomber hashes it: a changed byte makes the task outdated."""
    from tests.conftest import copy_project

    root = copy_project(tmp_path / "p")
    assert run_mlnb(root, "build", "--no-dvc").returncode == 0
    fast, ploomber = verdicts(root)
    assert all(fast.values()) and fast == ploomber
    schema = root / "data/schema.yaml"
    schema.write_text(schema.read_text() + "\n# touched\n")
    fast, ploomber = verdicts(root)
    assert not ploomber["validate"] and fast == ploomber
