"""The scaffold's use cases without a build: what init writes, that a failure writes nothing, and what
--from-ploomber adds to a Ploomber project (and what it never touches)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlnb.core.footprint import FOOTPRINT
from mlnb.errors import UserInputError
from mlnb.services import scaffold
from mlnb.services.adopt import adopt_project, sections
from mlnb.services.scaffold import init_project, project_name, template_files


def test_templates_substitute_the_project_name_and_keep_ploomber_placeholders() -> None:
    files = template_files("demo")
    assert {".gitignore", ".dvc/config", ".github/workflows/mlnb.yml", ".gitlab-ci.yml"} <= set(files)
    assert not any("dot-" in rel for rel in files)
    assert "{{project_name}}" not in "".join(files.values())
    assert "'{{data.target}}'" in files["pipeline.yaml"] and "experiment: demo\n" in files["params.yaml"]
    params_cells = {rel: json.loads(text)["cells"][1] for rel, text in files.items() if rel.endswith(".ipynb")}
    assert all(cell["metadata"]["tags"] == ["parameters"] for cell in params_cells.values())
    assert len(files["data/raw/sample.csv"].encode()) < 50_000
    ignored = files[".gitignore"].splitlines()
    written = [p.rstrip("/") for f in FOOTPRINT if f.path != "dvc.lock" for p in f.path.split(", ")]
    assert all(f"/{p}/" in ignored or f"/{p}" in ignored for p in written)  # all that builds write is ignored


@pytest.mark.parametrize("name, expected", [("My Project", "my-project"), ("__x__", "x"), ("***", "mlnb-project")])
def test_project_name(tmp_path: Path, name: str, expected: str) -> None:
    assert project_name(tmp_path / name) == expected


def test_init_writes_a_whole_project_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = init_project(tmp_path / "ok")
    assert "dvc.yaml" in result.written and (tmp_path / "ok/env.yaml").resolve() == (tmp_path / "ok/params.yaml")
    assert result.overwritten == ()

    def broken(tmp: Path) -> None:
        raise UserInputError("disk full")

    monkeypatch.setattr(scaffold, "_generate_dvc_yaml", broken)
    with pytest.raises(UserInputError, match="disk full"):
        init_project(tmp_path / "half")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]


def test_init_refuses_a_non_empty_directory_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text("all:\n")
    with pytest.raises(UserInputError, match=r"not empty \(1 entries\).*would overwrite Makefile"):
        init_project(tmp_path)
    assert init_project(tmp_path, force=True).overwritten == ("Makefile",)


def test_sections_keep_comments_with_their_block() -> None:
    text = "a: 1\n# about b\nb:\n  x: 1  # inline\n\n  y: 2\nc: 3\n"
    assert sections(text) == {"a": "a: 1\n", "b": "# about b\nb:\n  x: 1  # inline\n\n  y: 2\n", "c": "c: 3\n"}


def test_from_ploomber_appends_only_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text("tasks:\n  - source: t.py\n    product: out/t.ipynb\n")
    (tmp_path / "t.py").write_bytes(b"# %% tags=['parameters']\nupstream = None\n")
    (tmp_path / "env.yaml").write_text("rows: 4\nmlflow:\n  experiment: mine\n")
    (tmp_path / "Makefile").write_text("build:\n\tploomber build\n")
    (tmp_path / ".gitignore").write_text("/products/\n")
    result = adopt_project(tmp_path)
    assert result.appended == ("env.yaml", ".gitignore") and "Makefile" in result.kept
    env = (tmp_path / "env.yaml").read_text()
    assert env.startswith("rows: 4\nmlflow:\n  experiment: mine\n") and "\ngate:" in env and "\npromotion:" in env
    assert env.count("mlflow:") == 1
    assert (tmp_path / ".gitignore").read_text().count("/products/") == 1
    assert (tmp_path / "Makefile").read_text() == "build:\n\tploomber build\n"
    assert (tmp_path / "t.py").read_bytes() == b"# %% tags=['parameters']\nupstream = None\n"
    assert not (tmp_path / "params.yaml").exists()
    assert adopt_project(tmp_path).written == () and adopt_project(tmp_path).appended == ()


def test_from_ploomber_needs_a_pipeline(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no pipeline.yaml"):
        adopt_project(tmp_path)
