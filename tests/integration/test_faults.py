"""A task that raises, a kernel that dies, data that breaks the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import copy_project, run_mlnb

pytestmark = pytest.mark.integration


def task_lines(stdout: str) -> dict[str, str]:
    return {p[0]: p[1] for p in (ln.split() for ln in stdout.splitlines()) if len(p) >= 2 and p[0] in
            {"first", "second", "ingest", "validate", "features", "train", "evaluate", "export"}}


@pytest.mark.parametrize("mode, expected", [
    ("raise", "cell 2 ('import os, signal'): ValueError: bad value 1"),
    ("kill", "cell 2 ('import os, signal'): DeadKernelError"),
])
def test_failed_task_is_quarantined_and_rerun(tiny_project: Path, mode: str, expected: str) -> None:
    ok = run_mlnb(tiny_project, "build")
    assert ok.returncode == 0, ok.stderr
    assert (tiny_project / "products/second/data.txt").read_text() == "2"

    bad = run_mlnb(tiny_project, "build", "-p", f"second.mode={mode}")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"FAILED task second: {expected}" in bad.stderr, bad.stderr
    assert "partial notebook and outputs kept in products/_failed/second/" in bad.stderr
    assert "Traceback" not in bad.stderr
    # nothing stale stays where a later build would take it as fresh
    assert not (tiny_project / "products/second/second.ipynb").exists()
    assert not (tiny_project / "products/second/data.txt").exists()
    assert not (tiny_project / "products/second/.data.txt.metadata").exists()
    kept = json.loads((tiny_project / "products/_failed/second/second.ipynb").read_text())
    assert kept["cells"], "the partial notebook is kept for inspection"
    assert (tiny_project / "products/first/data.txt").exists()

    again = run_mlnb(tiny_project, "build")
    assert again.returncode == 0, again.stderr
    assert task_lines(again.stdout) == {"first": "skipped", "second": "executed"}
    assert (tiny_project / "products/second/data.txt").read_text() == "2"


def _broken(project: Path, name: str, change) -> str:
    frame = pd.read_csv(project / "data/raw/breast_cancer.csv")
    path = project / "data/raw" / name
    change(frame).to_csv(path, index=False)
    return f"data.source=data/raw/{name}"


def _text_in_numeric(frame: pd.DataFrame) -> pd.DataFrame:
    frame["mean_area"] = frame["mean_area"].astype(object)
    frame.loc[4, "mean_area"] = "about 1000"
    return frame


@pytest.mark.parametrize("name, change, message", [
    ("broken_missing_column.csv", lambda f: f.drop(columns=["mean_texture"]),
     "DataValidationError: column 'mean_texture' violates schema.columns: required column is missing"),
    ("broken_text_in_numeric.csv", _text_in_numeric,
     "DataValidationError: column 'mean_area' violates dtype float: non-numeric value 'about 1000' in row 4"),
])
def test_bad_data_fails_validate_with_one_line(tmp_path: Path, name: str, change, message: str) -> None:
    project = copy_project(tmp_path / "p")
    override = _broken(project, name, change)
    proc = run_mlnb(project, "build", "-p", override)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert task_lines(proc.stdout) == {"ingest": "executed", "validate": "failed", "features": "not",
                                       "train": "not", "evaluate": "not", "export": "not"}
    report = json.loads((project / "products/_failed/validate/report.json").read_text())
    assert report["status"] == "failed" and message.split(": ", 1)[1] in report["error"]
    assert not (project / "products/validate").exists() or not any((project / "products/validate").iterdir())
