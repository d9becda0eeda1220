"""``mlnb.services.debug`` on task kinds without a kernel (issue 20): one line saying what it covers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlnb.core.spec import load_spec
from mlnb.errors import UserInputError
from mlnb.services.debug import manifest

TASKS = "def load(product):\n    pass\n"


def test_debug_says_in_one_line_it_does_not_cover_sql_or_function_tasks(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("CREATE TABLE {{product}} AS SELECT 1 AS i;\n")
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "pipeline.yaml").write_text(
        "clients:\n  SQLScript: db.get\ntasks:\n  - source: a.sql\n    product: [a, table]\n"
        "  - source: tasks.load\n    product: out/data.json\n")
    spec = load_spec(tmp_path / "pipeline.yaml", {})
    with pytest.raises(UserInputError, match=r"task a: a SQL task \(a.sql\) runs as Ploomber runs it"):
        manifest(spec, "a")
    with pytest.raises(UserInputError, match=r"task load: a function task \(tasks.py\)"):
        manifest(spec, "load")


def test_explain_says_what_it_details(tmp_path: Path) -> None:
    from mlnb.services.explain import explain

    (tmp_path / "a.sql").write_text("CREATE TABLE {{product}} AS SELECT 1 AS i;\n")
    (tmp_path / "pipeline.yaml").write_text("clients:\n  SQLScript: db.get\ntasks:\n  - source: a.sql\n"
                                            "    product: [a, table]\n")
    (found,) = explain(load_spec(tmp_path / "pipeline.yaml", {}))
    assert [c.summary for c in found.changes] == [
        "a SQL task (a.sql): --explain details notebook and script tasks only; `mlnb status` gives Ploomber's "
        "verdict and reasons"]
