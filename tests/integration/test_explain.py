"""`mlnb status --explain` and `mlnb accept` on real builds (real kernels, real Ploomber metadata)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlnb.adapters.ploomber import pipeline
from mlnb.core.project import load_project
from tests.conftest import REPO, run_mlnb

pytestmark = pytest.mark.integration


def edit_cell(root: Path, task: str, index: int, source: str) -> None:
    path = root / f"notebooks/{task}.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][index]["source"] = source
    path.write_text(json.dumps(nb, indent=1))


def cell(root: Path, task: str, index: int) -> str:
    src = json.loads((root / f"notebooks/{task}.ipynb").read_text())["cells"][index]["source"]
    return "".join(src) if isinstance(src, list) else src


def ploomber_status(root: Path) -> dict[str, bool]:
    """`ploomber status` itself (its CLI), task -> outdated."""
    out = subprocess.run([str(Path(sys.executable).parent / "ploomber"), "status"], cwd=root, text=True,
                         capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)}, check=True).stdout
    lines = out.splitlines()
    rule = next(i for i, ln in enumerate(lines) if ln.startswith("----"))
    spans = [m.span() for m in re.finditer(r"-+", lines[rule])]  # the table's column widths
    header = [lines[rule - 1][a:b].strip() for a, b in spans]
    col = spans[header.index("Outdated?")]
    return {ln.split()[0]: ln[col[0]:col[1]].strip() != "False" for ln in lines[rule + 1:]
            if ln[:1].strip() and ln.split()[0] in ("first", "second")}


@pytest.fixture
def built(tiny_project: Path) -> Path:
    assert run_mlnb(tiny_project, "build", "--no-dvc").returncode == 0
    return tiny_project


def test_a_comment_only_edit_is_cosmetic_and_accept_makes_everyone_agree(built: Path) -> None:
    edit_cell(built, "first", 1, cell(built, "first", 1).replace("\n", "  # tidy\n\n", 1).replace(
        "str(value)", "str( value )"))
    out = run_mlnb(built, "status", "--explain")
    assert out.returncode == 0, out.stderr
    assert "first: outdated, cosmetic changes only" in out.stdout
    assert "cell 1 (code) changed (cosmetic" in out.stdout and "+" in out.stdout and "# tidy" in out.stdout
    assert "second: outdated" in out.stdout and "upstream first is outdated" in out.stdout
    assert ploomber_status(built) == {"first": True, "second": True}
    refused = run_mlnb(built, "accept", "second")
    assert refused.returncode == 2 and "upstream first is outdated" in refused.stderr
    accepted = run_mlnb(built, "accept", "first")
    assert accepted.returncode == 0, accepted.stderr
    assert ploomber_status(built) == {"first": False, "second": False}
    project = load_project(built)
    assert all(pipeline.ploomber_up_to_date(pipeline.open_dag(project.spec, project.env)).values())
    assert "up to date" in run_mlnb(built, "status").stdout and "outdated" not in run_mlnb(built, "status").stdout
    assert "Nothing to do" in run_mlnb(built, "build", "--no-dvc").stdout


def test_a_markdown_cell_added_is_cosmetic(built: Path) -> None:
    path = built / "notebooks/first.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"].append({"cell_type": "markdown", "id": "md1", "metadata": {}, "source": "Some notes."})
    path.write_text(json.dumps(nb))
    out = run_mlnb(built, "status", "--explain", "first")
    assert "cell 2 (markdown) added (cosmetic" in out.stdout and "cosmetic changes only" in out.stdout


def test_a_code_change_is_shown_as_a_diff_and_not_accepted_without_force(built: Path) -> None:
    edit_cell(built, "second", 3, cell(built, "second", 3) + "\nprint('extra')")
    out = run_mlnb(built, "status", "--explain", "second")
    assert "second: outdated\n" in out.stdout
    assert "cell 3 (code) changed\n" in out.stdout and "+print('extra')" in out.stdout
    refused = run_mlnb(built, "accept", "second")
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "is not cosmetic" in refused.stderr
    assert run_mlnb(built, "accept", "second", "--force").returncode == 0
    assert ploomber_status(built) == {"first": False, "second": False}


def test_param_and_upstream_reasons(built: Path) -> None:
    (built / "env.yaml").write_text("first:\n  value: 2\nsecond:\n  mode: ok\nmlflow:\n  experiment: tiny\n")
    out = run_mlnb(built, "status", "--explain")
    assert "param value: 1 -> 2" in out.stdout and "upstream first is outdated" in out.stdout
    assert run_mlnb(built, "accept", "first").returncode == 2  # a param change needs a run
    assert run_mlnb(built, "run", "first").returncode == 0  # first now writes 2: content changed
    out = run_mlnb(built, "status", "--explain", "second")
    assert re.search(r"upstream first: products/first/data.txt changed \(sha256 [0-9a-f]{8} -> [0-9a-f]{8}\)",
                     out.stdout), out.stdout
    assert run_mlnb(built, "build", "--no-dvc").returncode == 0
    (built / "env.yaml").write_text("first:\n  value: 2\nsecond:\n  mode: ok\nmlflow:\n  experiment: tiny\n")
    assert run_mlnb(built, "run", "first").returncode == 0  # re-runs, writes the same bytes
    out = run_mlnb(built, "status", "--explain", "second")
    assert "upstream first ran again but its products are identical" in out.stdout


def test_missing_product_and_unknown_task(built: Path) -> None:
    (built / "products/second/data.txt").unlink()
    assert "product missing: products/second/data.txt" in run_mlnb(built, "status", "--explain").stdout
    bad = run_mlnb(built, "status", "--explain", "nope")
    assert bad.returncode == 2 and "no task named 'nope'" in bad.stderr
