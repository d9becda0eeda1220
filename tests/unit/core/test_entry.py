"""``mlnb.core.entry`` and the spec features it brings (issue 20): Ploomber's entry points resolved
statically, ``meta.import_tasks_from``, SQL sources' upstream, a factory's spec handed to a loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlnb.core import entry
from mlnb.core.entry import EntryPoint
from mlnb.core.io import find_project_root
from mlnb.core.project import load_project
from mlnb.core.spec import PipelineSpec, load_files_spec, load_spec
from mlnb.errors import SpecError, UserInputError

TASKS = "def load(product):\n    pass\n\n\ndef total(upstream, product):\n    upstream['load']\n"


def test_default_is_pipeline_yaml_at_or_above(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text("tasks: []\n")
    (tmp_path / "sub").mkdir()
    found = entry.resolve(None, tmp_path / "sub")
    assert found == EntryPoint(tmp_path.resolve(), tmp_path.resolve() / "pipeline.yaml")


def test_a_package_spec_under_src(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "pipeline.yaml").write_text("tasks: []\n")
    assert find_project_root(tmp_path / "src") == tmp_path.resolve()
    assert entry.resolve(None, tmp_path).path == (tmp_path / "src" / "pkg" / "pipeline.yaml").resolve()


def test_another_spec_file_and_its_env(tmp_path: Path) -> None:
    (tmp_path / "pipeline.serve.yaml").write_text("tasks: []\n")
    found = entry.resolve("pipeline.serve.yaml", tmp_path)
    assert found.path == (tmp_path / "pipeline.serve.yaml").resolve() and found.env_name == "env.yaml"
    (tmp_path / "env.serve.yaml").write_text("a: 1\n")
    assert found.env_name == "env.serve.yaml"
    assert entry.resolve("pkg.mod.make_dag", tmp_path).factory == "pkg.mod.make_dag"


@pytest.mark.parametrize(("given", "said"), [
    ("..", "directory mode takes a folder inside the project"), ("missing.yaml", "no such spec file"),
    ("not a path", "neither a spec file nor a dotted path")])
def test_bad_entry_points_say_so_in_one_line(tmp_path: Path, given: str, said: str) -> None:
    with pytest.raises(UserInputError, match=said) as caught:
        entry.resolve(given, tmp_path)
    assert "\n" not in str(caught.value) and caught.value.exit_code == 2


def test_import_tasks_from(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "features.yaml").write_text("- source: tasks.load\n  product: out/data.json\n")
    (tmp_path / "pipeline.yaml").write_text("meta:\n  import_tasks_from: features.yaml\n"
                                            "tasks:\n  - source: tasks.total\n    product: out/total.json\n")
    spec = load_spec(tmp_path / "pipeline.yaml", {})
    assert list(spec.tasks) == ["load", "total"] and spec.tasks["total"].upstream == ("load",)
    (tmp_path / "features.yaml").write_text("{}\n")
    with pytest.raises(SpecError, match="meta.import_tasks_from: 'features.yaml' must be a non-empty list"):
        load_spec(tmp_path / "pipeline.yaml", {})


def test_sql_tasks_read_upstream_from_the_template(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("CREATE TABLE {{product}} AS SELECT 1 AS i;\n")
    (tmp_path / "b.sql").write_text("SELECT * FROM {{ upstream['a'] }}\n")
    (tmp_path / "pipeline.yaml").write_text(
        "clients:\n  SQLScript: db.get\n  SQLDump: db.get\n"
        "tasks:\n  - source: b.sql\n    class: SQLDump\n    product: out/b.csv\n    chunksize: null\n"
        "  - source: a.sql\n    product: [a, table]\n    product_class: SQLiteRelation\n")
    spec = load_spec(tmp_path / "pipeline.yaml", {})
    assert list(spec.tasks) == ["a", "b"] and spec.tasks["b"].upstream == ("a",)
    assert spec.tasks["a"].products == {} and spec.tasks["a"].notebook_product == (tmp_path / "a.sql").resolve()


def test_a_factory_spec_goes_to_the_loader(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text("location: factory.make\n")
    with pytest.raises(SpecError, match=r"pipeline.yaml: the pipeline is made by a Python factory \(factory.make\)"):
        _ = load_project(tmp_path).spec
    seen: list[Any] = []

    def loader(found: EntryPoint, factory: str, env: dict[str, Any]) -> PipelineSpec:
        seen.append((found.path, factory))
        return PipelineSpec(tmp_path / "pipeline.yaml", tmp_path, {}, factory=factory)

    assert load_project(tmp_path, factory_loader=loader).spec.factory == "factory.make"
    assert load_project(tmp_path, entry_point="pkg.make", factory_loader=loader).spec.factory == "pkg.make"
    assert seen == [((tmp_path / "pipeline.yaml").resolve(), "factory.make"), (None, "pkg.make")]



SCRIPT = '# %% tags=["parameters"]\nupstream = {up}\nproduct = {product}\n\n# %%\nprint(1)\n'


def test_directory_mode_reads_products_and_upstream_from_the_scripts(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "load.py").write_text(SCRIPT.format(up=None, product='"out/load.ipynb"'))
    (tmp_path / "tasks" / "fit.py").write_text(SCRIPT.format(up=["load"], product={"nb": "out/fit.ipynb"}))
    (tmp_path / "tasks" / "notes.txt").write_text("not a task")
    for given in ("tasks", "tasks/*.py"):
        found = entry.resolve(given, tmp_path)
        assert found == EntryPoint(tmp_path.resolve(), files=given) and found.spec_name == given
        spec = load_project(tmp_path, entry_point=given).spec
        assert list(spec.tasks) == ["load", "fit"] and spec.files == given
        assert spec.tasks["fit"].upstream == ("load",)
        assert spec.tasks["fit"].products == {"nb": (tmp_path / "out/fit.ipynb").resolve()}
    with pytest.raises(SpecError, match=r"'tasks/\*.txt': notes.txt is not a script or notebook"):
        load_files_spec("tasks/*.txt", tmp_path)
    with pytest.raises(SpecError, match=r"--entry-point 'none/\*.py': no scripts or notebooks"):
        load_files_spec("none/*.py", tmp_path)
    (tmp_path / "tasks" / "bare.py").write_text(SCRIPT.format(up=None, product=None))
    with pytest.raises(SpecError, match="needs 'product' \\(or, with meta.extract_product, a product in the "
                                        "parameters cell of .*bare.py\\)"):
        load_files_spec("tasks", tmp_path)


def test_meta_extract_switches(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(SCRIPT.format(up=None, product='"out/a.ipynb"'))
    (tmp_path / "b.py").write_text(SCRIPT.format(up=None, product='"out/b.ipynb"'))
    spec_file = tmp_path / "pipeline.yaml"
    spec_file.write_text("meta:\n  extract_product: true\n  extract_upstream: false\n"
                         "tasks:\n  - source: a.py\n  - source: b.py\n    upstream: a\n")
    spec = load_spec(spec_file, {})
    assert spec.tasks["b"].upstream == ("a",) and spec.tasks["a"].products == {"nb": (tmp_path / "out/a.ipynb").resolve()}
    spec_file.write_text("meta:\n  extract_product: true\ntasks:\n  - source: a.py\n    product: out/x.ipynb\n")
    with pytest.raises(SpecError, match=r"tasks\[0\].product: with meta.extract_product the product is read"):
        load_spec(spec_file, {})
    spec_file.write_text("meta:\n  extract_product: 'yes'\ntasks:\n  - source: a.py\n")
    with pytest.raises(SpecError, match="meta.extract_product: expected true or false, got 'yes'"):
        load_spec(spec_file, {})


def test_entry_point_variable_and_setup_cfg(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "pipeline.train.yaml").write_text("tasks: []\n")
    (tmp_path / "pipeline.yaml").write_text("tasks: []\n")
    assert entry.resolve(None, tmp_path).path == (tmp_path / "pipeline.yaml").resolve()
    (tmp_path / "setup.cfg").write_text("[ploomber]\nentry-point = specs/pipeline.train.yaml\n")
    found = entry.resolve(None, tmp_path / "specs")
    assert found == EntryPoint(tmp_path.resolve(), (tmp_path / "specs/pipeline.train.yaml").resolve())
    assert entry.products_root(found.path) == (tmp_path / "specs").resolve()  # Ploomber: the spec's folder
    assert entry.resolve(None, tmp_path, variable="pipeline.yaml").path == (tmp_path / "pipeline.yaml").resolve()
    with pytest.raises(UserInputError, match="^ENTRY_POINT: 'gone.yaml': no such spec file$"):
        entry.resolve(None, tmp_path, variable="gone.yaml")
    (tmp_path / "setup.cfg").write_text("[ploomber]\nentry-point = gone.yaml\n")
    with pytest.raises(UserInputError, match=r"setup.cfg: \[ploomber\] entry-point: 'gone.yaml': no such spec file"):
        entry.resolve(None, tmp_path)
