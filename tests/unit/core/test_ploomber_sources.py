"""Ploomber's non-notebook sources and grids, read statically (mlnb.core.sources, mlnb.core.grid)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlnb.core import grid, sources
from mlnb.core.notebooks import parse_task_notebook
from mlnb.core.spec import load_spec
from mlnb.errors import SpecError


def test_percent_script_parameters_cell_without_product_and_upstream_as_a_set(tmp_path: Path) -> None:
    script = tmp_path / "t.py"
    script.write_text('# %% tags=["parameters"]\nupstream = {"b", "a"}\nrows = 3\n\n# %%\nimport json\n')
    nb = parse_task_notebook(script)
    assert nb.upstream == ("a", "b") and nb.defaults == {"rows": 3} and nb.imports == ("json",)


def test_function_source_and_its_upstream(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("def count(upstream, product):\n    return upstream['split']\n")
    assert sources.kind_of(tmp_path, "tasks.count") == sources.FUNCTION
    assert sources.resolve_function(tmp_path, "tasks.count") == (tmp_path / "tasks.py", ("split",))


def test_grid_names_and_products_as_ploomber() -> None:
    combos = grid.combinations({"n": [1, 2], "kind": "a"}, {}, "w")
    assert combos == [{"n": 1, "kind": "a"}, {"n": 2, "kind": "a"}]
    assert grid.task_name("fit-[[n]]", 1, combos[1], "w") == "fit-2" and grid.task_name("fit-", 1, {}, "w") == "fit-1"
    assert grid.product_path("out/fit-[[kind]].json", 1, combos[1], "w") == "out/fit-a-1.json"



def _git(cwd: Path, *args: str) -> str:
    import subprocess
    done = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@localhost", *args], cwd=cwd,
                          check=True, capture_output=True, text=True)
    return done.stdout.strip()


def test_git_placeholders_say_what_ploomber_says(tmp_path: Path) -> None:
    """{{git}}: the branch, else the commit; {{git_hash}}: `git describe --tags --always --dirty=-dirty`."""
    here = tmp_path / "project" / "sub"
    here.mkdir(parents=True)
    _git(tmp_path / "project", "init", "-q", "-b", "feature")
    (here / "a.txt").write_text("1")
    _git(tmp_path / "project", "add", ".")
    _git(tmp_path / "project", "commit", "-q", "-m", "one")
    _git(tmp_path / "project", "pack-refs", "--all")  # a packed ref reads as a loose one
    short = _git(here, "rev-parse", "--short", "HEAD")
    found = sources.builtin_placeholders(tmp_path / "project", here)
    assert (found["git"](), found["git_hash"]()) == ("feature", short)
    (here / "a.txt").write_text("2")
    assert found["git_hash"]() == f"{short}-dirty"
    _git(tmp_path / "project", "tag", "v1.0")
    _git(tmp_path / "project", "checkout", "-q", "-f", "--detach")
    assert (found["git"](), found["git_hash"]()) == ("v1.0", "v1.0")


def test_ploomber_keys_of_sql_function_and_hook_tasks_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "seed.csv").write_text("i\n1\n")
    (tmp_path / "tasks.py").write_text("def make(n):\n    return n\n")
    (tmp_path / "pipeline.yaml").write_text(
        "serializer: serial.write\nunserializer: serial.read\nclients:\n  File: clients.get\n"
        "on_render: hooks.render\non_finish: hooks.finish\non_failure: hooks.failure\ntasks:\n"
        "  - source: seed.csv\n    name: upload\n    class: SQLUpload\n    product: [seed, table]\n"
        "    to_sql_kwargs: {index: false}\n"
        "  - source: tasks.make\n    product: out/n.json\n    params: {n: 1}\n    serializer: serial.other\n"
        "    on_finish: {dotted_path: hooks.check, minimum: 2}\n")
    spec = load_spec(tmp_path / "pipeline.yaml", {})
    assert list(spec.tasks) == ["upload", "make"]
    assert (spec.tasks["upload"].what, spec.tasks["make"].what) == ("a non-notebook task", "a function task")


def test_a_misspelt_task_key_is_still_one_line(tmp_path: Path) -> None:
    (tmp_path / "tasks.py").write_text("def make():\n    return 1\n")
    (tmp_path / "pipeline.yaml").write_text("tasks:\n  - source: tasks.make\n    product: out/n.json\n"
                                            "    serialiser: serial.write\n")
    with pytest.raises(SpecError, match=r"^pipeline.yaml: tasks\[0\]: unknown key 'serialiser'$"):
        load_spec(tmp_path / "pipeline.yaml", {})
