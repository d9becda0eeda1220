"""``mlnb.core.project``: one Project, its env read once and its spec on first use, the experiment
name defined once, and the registry opened from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlnb.core import project as project_module
from mlnb.core.project import DEFAULT_EXPERIMENT, Project, load_project
from mlnb.errors import EnvError, SpecError
from tests.conftest import write_notebook

PIPELINE = "tasks:\n  - source: notebooks/t.ipynb\n    product: products/t/t.ipynb\n    params:\n      a: '{{t.a}}'\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_notebook(tmp_path / "notebooks" / "t.ipynb", [("params", "upstream = None\nproduct = None\na = 1")])
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    (tmp_path / "env.yaml").write_text("t:\n  a: 1\nmlflow:\n  experiment: exp\n  model_name: m\n")
    return tmp_path


def test_env_is_read_once_and_the_spec_on_first_use(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[Path] = []
    real = project_module.load_env
    monkeypatch.setattr(project_module, "load_env", lambda p: reads.append(Path(p)) or real(p))
    project = load_project(root)
    assert reads == [] and "spec" not in vars(project)  # nothing read yet
    assert project.spec.tasks["t"].params == {"a": 1}
    assert project.env["t"] == {"a": 1} and project.experiment == "exp" and project.mlflow["model_name"] == "m"
    assert project.spec is project.spec and reads == [root / "env.yaml"]


def test_overrides_and_env_file(root: Path) -> None:
    project = load_project(root, overrides=("t.a=2",))
    assert project.spec.tasks["t"].params == {"a": 2} and project.overridden
    assert project.committed.spec.tasks["t"].params == {"a": 1}
    assert load_project(root).committed == load_project(root)
    other = root / "other.yaml"
    other.write_text("t:\n  a: 3\n")
    from_file = load_project(root, str(other))
    assert from_file.env_path == other and from_file.spec.tasks["t"].params == {"a": 3}
    assert from_file.experiment == DEFAULT_EXPERIMENT == "mlnb"  # no mlflow section


def test_errors_are_raised_where_the_values_are_first_needed(root: Path) -> None:
    missing = load_project(root, "nope.yaml")  # loading reads nothing
    with pytest.raises(EnvError, match=r"^nope.yaml: env file not found$"):
        _ = missing.env
    with pytest.raises(EnvError, match="no key 't.b'"):
        _ = load_project(root, overrides=("t.b=1",)).spec
    (root / "pipeline.yaml").write_text("tasks: 3\n")
    with pytest.raises(SpecError):
        _ = load_project(root).spec
    assert load_project(root).experiment == "exp"  # the env alone is fine


def test_no_env_yaml_is_an_empty_env(tmp_path: Path) -> None:
    project = Project(tmp_path)
    assert project.env == {} and project.mlflow == {} and project.experiment == DEFAULT_EXPERIMENT


def test_settings_through_the_project(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLNB_SERVE_PORT", "8181")
    assert load_project(root).setting("MLNB_SERVE_PORT") == 8181


def test_the_registry_opens_from_the_project(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlnb.services import registry

    opened: list[tuple[Path, str]] = []
    monkeypatch.setattr(registry.tracking, "configure", lambda r, e: opened.append((r, e)) or "7")
    models = registry.open_registry(load_project(root))
    assert (models.model_name, models.root, models.experiment_id) == ("m", root, "7")
    assert opened == [(root, "exp")]
    (root / "env.yaml").write_text("mlflow:\n  model_name: 'bad name'\n")
    with pytest.raises(EnvError, match="mlflow.model_name: expected a model name"):
        registry.open_registry(load_project(root))


def test_experiment_default_is_defined_once() -> None:
    from tests.conftest import REPO

    defined = [str(p.relative_to(REPO)) for p in (REPO / "mlnb").rglob("*.py")
               if "DEFAULT_EXPERIMENT =" in p.read_text()]
    assert defined == ["mlnb/core/project.py"]
