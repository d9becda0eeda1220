"""TaskStatus keeps its strings; the failure manifest and the gate result round-trip their JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlnb.core.gate import GateConfig, GateResult, evaluate_gate
from mlnb.core.outcomes import CellError, CheapCells, FailedCell, FailureManifest, TaskStatus
from mlnb.errors import EnvError, UserInputError


def test_task_status_is_its_string() -> None:
    assert json.dumps({"s": TaskStatus.NOT_RUN}) == '{"s": "not run"}'
    assert f"{TaskStatus.EXECUTED}" == "executed" and TaskStatus("failed") is TaskStatus.FAILED
    assert [s for s in TaskStatus if s.ran] == [TaskStatus.EXECUTED, TaskStatus.FAILED]
    assert [s for s in TaskStatus if s.current] == [TaskStatus.EXECUTED, TaskStatus.SKIPPED]


def _manifest(**changes: object) -> FailureManifest:
    values: dict[str, object] = dict(
        task="train", build_run_id="a" * 32, time=1.5, cell=FailedCell(3, "c3", "fit(X)"),
        error=CellError("ValueError", "bad"), kernel_died=False, source="notebooks/train.ipynb",
        source_sha256="f" * 64, cells=[{"id": "c0", "type": "code", "sha256": "0" * 64}], params={"C": 1.0},
        upstream={"features": "1" * 64}, partial_notebook="products/_failed/train/train.ipynb",
        snapshot={"saved": ["df"], "modules": {}, "too_big": [], "unpicklable": {}}, cheap=None)
    values.update(changes)
    return FailureManifest(**values)  # type: ignore[arg-type]


def test_manifest_round_trips_with_the_layout_mlnb_always_wrote() -> None:
    manifest = _manifest(cheap=CheapCells(0.25, 1.0), snapshot=None)
    text = manifest.to_json()
    assert list(json.loads(text)) == ["task", "build_run_id", "time", "cell", "error", "kernel_died", "source",
                                      "source_sha256", "cells", "params", "upstream", "partial_notebook",
                                      "snapshot", "cheap"]
    assert json.loads(text)["cell"] == {"index": 3, "id": "c3", "first_line": "fit(X)"}
    assert FailureManifest.from_json(text) == manifest
    assert FailureManifest.from_json(text).to_json() == text
    died = _manifest(cell=None, error=None, kernel_died=True)
    assert FailureManifest.from_json(died.to_json()) == died


def test_a_bad_manifest_names_the_file_and_field(tmp_path: Path) -> None:
    data = json.loads(_manifest().to_json())
    path = tmp_path / "manifest.json"
    for key, value, field in [("cell", {"id": "x"}, "cell.index"), ("params", [], "params"),
                              ("time", "soon", "time"), ("task", None, "task")]:
        path.write_text(json.dumps({**data, key: value}))
        with pytest.raises(UserInputError, match=f"manifest.json: {field}:"):
            FailureManifest.read(path)
    path.write_text("{")
    with pytest.raises(UserInputError, match="manifest.json: not JSON"):
        FailureManifest.read(path)


def test_gate_result_round_trips_the_gate_product() -> None:
    res = evaluate_gate([0, 1, 1, 0] * 10, [0, 1, 1, 0] * 10, GateConfig(bootstrap=50), baseline_out=[0] * 40)
    written = json.loads(json.dumps(res.to_dict(), sort_keys=True))  # as the task writes it (write_json)
    parsed = GateResult.from_dict(written)
    assert parsed.verdict == res.verdict and parsed.checks == res.checks and parsed.passed
    assert json.dumps(parsed.to_dict()) == json.dumps(written)  # the file, byte for byte
    judged = GateResult.from_dict({"passed": False, "extra": 1})  # a project's own gate task
    assert judged.verdict == "failed" and judged.to_dict() == {"passed": False, "extra": 1}
    with pytest.raises(EnvError, match="gate.json: verdict:"):
        GateResult.from_dict({"verdict": "maybe"})
