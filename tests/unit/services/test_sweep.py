"""The sweep's grid and what it shares (pure parts of :mod:`mlnb.services.sweep`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlnb.core.project import load_project
from mlnb.errors import EnvError
from mlnb.services.sweep import parse_grid, shared_tasks
from tests.conftest import REPO


def test_commas_make_a_grid_and_single_values_stay_fixed() -> None:
    grid, fixed = parse_grid(("train.C=0.1,1,10", "train.model=a,b", "split.seed=3", "x=[1,2],[3]"))
    assert grid == [("train.C", ["0.1", "1", "10"]), ("train.model", ["a", "b"]), ("x", ["[1,2]", "[3]"])]
    assert fixed == ["split.seed=3"]


@pytest.mark.parametrize(("params", "said"), [
    (("train.C=1",), "no swept key"),
    (("train.C=1,,2",), "empty or repeated"),
    (("train.C=1,1",), "empty or repeated"),
    (("train.C=1,2", "train.C=3,4"), "given twice"),
    (("nokey",), "expected KEY=VALUE"),
    (("a=" + ",".join(map(str, range(20))), "b=" + ",".join(map(str, range(20)))), "at most 256"),
])
def test_a_bad_grid_is_one_line(params: tuple[str, ...], said: str) -> None:
    with pytest.raises(EnvError, match=said) as info:
        parse_grid(params)
    assert "\n" not in str(info.value)


def test_the_example_shares_what_is_upstream_of_training() -> None:
    project = load_project(Path(REPO))
    assert shared_tasks(project, ["train.C"]) == ["ingest", "validate", "features"]
    assert shared_tasks(project, ["split.test_size"]) == ["ingest", "validate"]
    assert shared_tasks(project, ["gate.min_delta"]) == ["ingest", "validate", "features", "train"]
    assert shared_tasks(project, ["data"]) == []  # a whole section: every task that reads any of it
