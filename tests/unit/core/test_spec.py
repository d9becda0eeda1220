"""pipeline.yaml / notebook / env mistakes give one line naming the file and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlnb.core.config import apply_overrides, load_env
from mlnb.core.spec import load_spec
from mlnb.errors import EnvError, NotebookError, SpecError, UserInputError
from tests.conftest import copy_project, run_mlnb, write_notebook


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "p")


def load(project: Path, overrides: tuple[str, ...] = ()):
    env = apply_overrides(load_env(project / "env.yaml"), list(overrides))
    return load_spec(project / "pipeline.yaml", env)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"fixture drifted: {old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_example_spec_loads_in_topological_order(project: Path) -> None:
    spec = load(project)
    assert list(spec.tasks) == ["ingest", "validate", "features", "train", "evaluate", "export"]
    assert spec.tasks["evaluate"].upstream == ("train", "features")
    assert spec.tasks["train"].params["C"] == 1.0
    assert "train.C" in spec.tasks["train"].env_keys
    assert spec.downstream("features") == ["train", "evaluate", "export"]


def test_unknown_upstream(project: Path) -> None:
    edit(project / "notebooks/train.ipynb", 'upstream = [\\"features\\"]', 'upstream = [\\"featurez\\"]')
    with pytest.raises(SpecError, match=r"tasks\[train\]: upstream 'featurez' .*notebooks/train.ipynb"):
        load(project)


def test_cycle(project: Path) -> None:
    edit(project / "notebooks/ingest.ipynb", "upstream = None", 'upstream = [\\"export\\"]')
    with pytest.raises(SpecError, match=r"dependency cycle: .*ingest -> .*export -> ingest|cycle: .*"):
        load(project)


def test_duplicate_product(project: Path) -> None:
    edit(project / "pipeline.yaml", "data: products/ingest/data.parquet", "data: products/features/train.parquet")
    with pytest.raises(SpecError, match=r"tasks\[features\]\.product\.train: 'products/features/train.parquet' "
                                        r"is also a product of task 'ingest'"):
        load(project)


def test_unknown_task_key(project: Path) -> None:
    edit(project / "pipeline.yaml", "  - source: notebooks/train.ipynb\n", "  - source: notebooks/train.ipynb\n    prodcut: x\n")
    with pytest.raises(SpecError, match=r"pipeline.yaml: tasks\[3\]: unknown key 'prodcut'"):
        load(project)


def test_unknown_top_level_key(project: Path) -> None:
    (project / "pipeline.yaml").write_text("taks: []\n" + (project / "pipeline.yaml").read_text())
    with pytest.raises(SpecError, match="unknown top-level key 'taks'"):
        load(project)


def test_notebook_without_parameters_cell(project: Path) -> None:
    nb = json.loads((project / "notebooks/features.ipynb").read_text())
    for cell in nb["cells"]:
        cell["metadata"].pop("tags", None)
    (project / "notebooks/features.ipynb").write_text(json.dumps(nb))
    with pytest.raises(NotebookError, match=r"notebooks/features.ipynb: no cell tagged 'parameters'"):
        load(project)


def test_invalid_json_notebook(project: Path) -> None:
    path = project / "notebooks/validate.ipynb"
    path.write_text(path.read_text()[:-20])
    with pytest.raises(NotebookError, match=r"notebooks/validate.ipynb: invalid JSON at line \d+ column \d+"):
        load(project)


def test_param_of_wrong_type_in_env(project: Path) -> None:
    edit(project / "env.yaml", "C: 1.0", "C: strong")
    with pytest.raises(SpecError, match=r"tasks\[train\]\.params\.C: expected float \(default 1.0 in "
                                        r"notebooks/train.ipynb\), got str 'strong'"):
        load(project)


def test_override_of_wrong_type_and_unknown_key(project: Path) -> None:
    with pytest.raises(EnvError, match=r"-p train.C='abc': expected float like 1.0, got str"):
        load(project, ("train.C=abc",))
    with pytest.raises(EnvError, match=r"-p train.gamma: no key 'train.gamma' in env.yaml"):
        load(project, ("train.gamma=1",))
    assert load(project, ("train.C=2",)).tasks["train"].params["C"] == 2.0


def test_param_not_declared_in_notebook_warns_as_ploomber_does(project: Path) -> None:
    edit(project / "pipeline.yaml", "      seed: '{{train.seed}}'\n", "      seed: '{{train.seed}}'\n      gamma: 3\n")
    spec = load(project)
    assert any(w.startswith("pipeline.yaml: tasks[train].params.gamma: not declared in the parameters cell")
               for w in spec.warnings)
    assert spec.tasks["train"].params["gamma"] == 3


def test_param_not_declared_is_an_error_under_strict_static_analysis(project: Path) -> None:
    edit(project / "pipeline.yaml", "      seed: '{{train.seed}}'\n", "      seed: '{{train.seed}}'\n      gamma: 3\n")
    edit(project / "pipeline.yaml", "- source: notebooks/train.ipynb\n",
         "- source: notebooks/train.ipynb\n    static_analysis: strict\n")
    with pytest.raises(SpecError, match=r"tasks\[train\]\.params\.gamma: not declared in the parameters cell"):
        load(project)


def test_product_outside_project(project: Path) -> None:
    edit(project / "pipeline.yaml", "report: products/validate/report.json", "report: ../../escape.json")
    with pytest.raises(UserInputError, match=r"product.report '../../escape.json' is outside the project"):
        load(project)


def test_notebook_defaults_match_env(project: Path) -> None:
    """Interactive runs use the parameters-cell defaults: they must equal env.yaml's values."""
    spec = load(project)
    from mlnb.core.notebooks import parse_task_notebook

    for task in spec.tasks.values():
        defaults = parse_task_notebook(task.source).defaults
        for name, value in task.params.items():
            assert defaults[name] == value, f"{task.source.name}: default {name}={defaults[name]!r} != env {value!r}"


@pytest.mark.parametrize("case", ["cycle", "bad_json", "bad_type"])
def test_cli_bad_input_exits_2_with_one_line_and_builds_nothing(project: Path, case: str) -> None:
    if case == "cycle":
        edit(project / "notebooks/ingest.ipynb", "upstream = None", 'upstream = [\\"export\\"]')
        args: tuple[str, ...] = ("build",)
    elif case == "bad_json":
        (project / "notebooks/train.ipynb").write_text("{not json")
        args = ("build",)
    else:
        args = ("build", "-p", "split.test_size=big")
    proc = run_mlnb(project, *args)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("mlnb: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (project / "products").exists()
    assert not (project / "mlflow.db").exists()


def test_write_notebook_helper_round_trips(tmp_path: Path) -> None:
    from mlnb.core.notebooks import parse_task_notebook

    nb = write_notebook(tmp_path / "x.ipynb", [("params", "upstream = ['a']\nproduct = None\nk: int = 3")])
    parsed = parse_task_notebook(nb)
    assert parsed.upstream == ("a",) and parsed.defaults == {"k": 3}
