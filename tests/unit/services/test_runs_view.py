"""The Runs view's pure parts: the gate verdict (new tag wins, older tag mapped), params that differ
from the champion, which artifact paths are served, the MLflow UI link."""

from __future__ import annotations

import pytest

from mlnb.adapters.mlflow import tracking
from mlnb.errors import UserInputError
from mlnb.services import runs


@pytest.mark.parametrize("tags, verdict", [
    ({"mlnb.gate.verdict": "not_promotable", "mlnb.gate_passed": "false"}, "not_promotable"),
    ({"mlnb.gate.verdict": "promotable", "mlnb.gate_passed": "false"}, "promotable"),  # the new tag wins
    ({"mlnb.gate.verdict": "failed"}, "failed"),
    ({"mlnb.gate_passed": "true"}, "promotable"),
    ({"mlnb.gate_passed": "false"}, "failed"),
    ({"mlnb.gate.verdict": "maybe", "mlnb.gate_passed": "true"}, "promotable"),  # unknown value: ignored
    ({}, "-"),
])
def test_gate_verdict(tags: dict[str, str], verdict: str) -> None:
    assert tracking.gate_verdict(tags) == verdict


def test_params_diff_lists_only_what_differs_and_what_one_side_lacks() -> None:
    run = {"train.C": "0.5", "train.model": "lr", "extra": "1"}
    champion = {"train.C": "1.0", "train.model": "lr", "gone": "x"}
    assert runs._params_diff(run, champion) == [
        {"key": "extra", "value": "1", "champion": None},
        {"key": "gone", "value": None, "champion": "x"},
        {"key": "train.C", "value": "0.5", "champion": "1.0"},
    ]
    assert runs._params_diff(run, None) == []  # no champion: nothing to differ from
    assert runs._params_diff({}, champion) == []  # a build that logged no params says nothing
    assert runs._params_diff(champion, dict(champion)) == []


def test_metric_keys_are_whatever_the_runs_report() -> None:
    rows = [{"metrics": {"r2": 0.8, "mae": 3.0}}, {"metrics": {"log_loss": 0.1}}, {"metrics": {}}]
    assert runs.metric_keys(rows) == ["log_loss", "mae", "r2"]


@pytest.mark.parametrize("path", ["roc.png", "plots/Confusion Matrix.JPG", "a/b/c.webp", "x.jpeg"])
def test_image_paths_are_accepted(path: str) -> None:
    assert runs.check_artifact_path(path) == path


@pytest.mark.parametrize("path, error", [
    ("../roc.png", "plain names"), ("a/../../roc.png", "plain names"), ("/etc/x.png", "plain names"),
    ("a\\b.png", "plain names"), ("a//b.png", "plain names"), (".hidden.png", "plain names"),
    ("roc.png\x00.txt", "plain names"), ("", "plain names"), ("a/b/c/d/e/f.png", "plain names"),
    ("notebooks/evaluate.ipynb", "only images"), ("plot.svg", "only images"), ("MLmodel", "only images"),
])
def test_other_paths_are_refused_without_echo(path: str, error: str) -> None:
    with pytest.raises(UserInputError) as info:
        runs.check_artifact_path(path)
    assert error in str(info.value) and (not path or path not in str(info.value))


@pytest.mark.parametrize("uri, base", [
    ("http://mlflow.example:5000/", "http://mlflow.example:5000"),
    ("https://mlflow.example/prefix", "https://mlflow.example/prefix"),
    ("sqlite:////tmp/p/mlflow.db", None),
    ("file:///tmp/mlruns", None),
])
def test_mlflow_ui_link_only_for_a_tracking_server(uri: str, base: str | None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    before = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    try:
        mlflow.set_tracking_uri(uri)
        assert runs.mlflow_ui_base() == base
    finally:
        mlflow.set_tracking_uri(before)


def test_mlflow_ui_link_names_the_experiment_and_run(tmp_path) -> None:
    from mlnb.core.project import Project
    from mlnb.services.registry import ModelRegistry

    models = ModelRegistry(Project(tmp_path), "m", "7")
    view = runs._View(models, None, None, {}, "http://mlflow.example:5000")
    assert view.url("a" * 32) == f"http://mlflow.example:5000/#/experiments/7/runs/{'a' * 32}"
    assert runs._View(models, None, None, {}, None).url("a" * 32) is None
