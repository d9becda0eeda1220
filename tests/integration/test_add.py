"""`mlnb add`: an existing notebook joins the pipeline, with its upstream inferred, and builds."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import run_mlnb, write_notebook


def test_add_infers_upstream_declares_products_and_builds(tiny_project: Path):
    # Written as in Jupyter: paths relative to the notebook's own folder, no parameters cell.
    write_notebook(tiny_project / "notebooks/third.ipynb", [
        ("markdown", "# Third\nDoubles what `second` wrote."),
        ("code", "from pathlib import Path\nx = int(Path('../products/second/data.txt').read_text())\n"
                 "raw = Path('../data/raw.txt').read_text()"),
        ("code", "Path('../products/third').mkdir(parents=True, exist_ok=True)\n"
                 "Path('../products/third/out.txt').write_text(str(x * 2) + raw)\nprint('third', x * 2)"),
    ])
    (tiny_project / "data").mkdir()
    (tiny_project / "data/raw.txt").write_text("!")
    before = (tiny_project / "pipeline.yaml").read_text()
    res = run_mlnb(tiny_project, "add", "notebooks/third.ipynb")
    assert res.returncode == 0, res.stderr
    assert "added task third: upstream second" in res.stdout
    spec = yaml.safe_load((tiny_project / "pipeline.yaml").read_text())
    task = spec["tasks"][-1]
    assert task["source"] == "notebooks/third.ipynb"
    assert task["product"] == {"nb": "products/third/third.ipynb", "out": "products/third/out.txt"}
    assert (tiny_project / "pipeline.yaml").read_text().startswith(before)  # appended, existing text kept
    nb = json.loads((tiny_project / "notebooks/third.ipynb").read_text())
    params = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1 and "upstream = ['second']" in "".join(params[0]["source"])
    assert nb["cells"][0]["cell_type"] == "markdown"  # inserted before the first code cell

    res = run_mlnb(tiny_project, "build")
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tiny_project / "products/third/out.txt").read_text() == "4!"
    again = run_mlnb(tiny_project, "add", "notebooks/third.ipynb")
    assert again.returncode == 2 and again.stderr.strip() == "mlnb: error: notebooks/third.ipynb: already a task of pipeline.yaml"


def test_add_refuses_a_notebook_writing_another_tasks_product(tiny_project: Path):
    write_notebook(tiny_project / "notebooks/clash.ipynb", [
        ("code", "open('../products/first/data.txt', 'w').write('x')"),
    ])
    spec_before = (tiny_project / "pipeline.yaml").read_text()
    nb_before = (tiny_project / "notebooks/clash.ipynb").read_text()
    res = run_mlnb(tiny_project, "add", "notebooks/clash.ipynb")
    assert res.returncode == 2
    assert "writes '../products/first/data.txt', already a product of task 'first'" in res.stderr
    assert (tiny_project / "pipeline.yaml").read_text() == spec_before  # nothing half-written
    assert (tiny_project / "notebooks/clash.ipynb").read_text() == nb_before
