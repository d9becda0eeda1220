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


def test_a_failed_function_task_leaves_no_manifest(tmp_path: Path) -> None:
    from mlnb.adapters.ploomber.pipeline import TaskOutcome
    from mlnb.core.outcomes import TaskStatus
    from mlnb.services.debug import record_failure, snapshot_dir

    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "pipeline.yaml").write_text("tasks:\n  - source: tasks.load\n    product: out/data.json\n")
    spec = load_spec(tmp_path / "pipeline.yaml", {})
    assert record_failure(spec, TaskOutcome("load", TaskStatus.FAILED)) is None
    assert not snapshot_dir(tmp_path, "load").exists()


def test_explain_takes_ploomber_verdict_for_what_it_cannot_analyse(tmp_path: Path) -> None:
    from mlnb.adapters.ploomber.pipeline import TaskState
    from mlnb.services.explain import explain

    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "load.py").write_text('# %% tags=["parameters"]\nupstream = None\nproduct = None\n\n# %%\nx = 1\n')
    (tmp_path / "pipeline.yaml").write_text("tasks:\n  - source: tasks.load\n    product: out/data.json\n"
                                            "  - source: load.py\n    name: script\n    product: out/s.ipynb\n")
    spec = load_spec(tmp_path / "pipeline.yaml", {})
    said = [TaskState("load", False, ()), TaskState("script", True, ("product missing",))]
    found = {e.task: e for e in explain(spec, verdict=lambda: said)}
    assert not found["load"].outdated
    assert [c.summary for c in found["script"].changes] == ["product missing: out/s.ipynb"]
    said = [TaskState("load", True, ("product missing",)), TaskState("script", True, ("product missing",))]
    assert [c.summary for c in explain(spec, "load", verdict=lambda: said)[0].changes] == ["product missing"]
