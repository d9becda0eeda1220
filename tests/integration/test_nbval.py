"""Tests of the tests: nbval references catch deliberate changes, bless restores them, and a raising
or dying notebook is a failure of that notebook, not of the suite (real kernels, real pytest --nbval)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, copy_project, run_mlnb

pytestmark = pytest.mark.integration


def nbval(root: Path, *targets: str, nbval_items: bool = True) -> subprocess.CompletedProcess:
    """What `make nbval` runs, on some of the project's reference files."""
    opts = ["--nbval", "--nbval-sanitize-with", "tests/nbval/sanitize.cfg"] if nbval_items else []
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *opts,
                           *[f"tests/nbval/{t}" for t in targets]], cwd=root, capture_output=True, text=True,
                          env={**__import__("os").environ, "PYTHONPATH": str(REPO)}, timeout=1200)


def edit_cell(path: Path, cell_id: str, old: str, new: str) -> None:
    nb = json.loads(path.read_text())
    cell = next(c for c in nb["cells"] if c.get("id") == cell_id)
    src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    assert old in src
    cell["source"] = src.replace(old, new)
    path.write_text(json.dumps(nb, indent=1))


def add_cell(path: Path, at: int, kind: str, cell_id: str, source: str) -> None:
    nb = json.loads(path.read_text())
    cell = {"cell_type": kind, "id": cell_id, "metadata": {}, "source": source}
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    nb["cells"].insert(at, cell)
    path.write_text(json.dumps(nb, indent=1))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_project(tmp_path_factory.mktemp("nbval") / "project")


def test_changed_message_fails_then_bless_shows_the_diff_and_passes(project: Path):
    features = project / "notebooks/features.ipynb"
    edit_cell(features, "5ff6d94b", 'print(f"train: {len(train)} rows', 'print(f"training set: {len(train)} rows')
    res = nbval(project, "test_references.py", nbval_items=False)
    assert res.returncode == 1, res.stdout
    assert "test_reference_is_current[features]" in res.stdout
    assert ("tests/nbval/features.ipynb: stale reference (code cell 2 (id 5ff6d94b) changed in "
            "notebooks/features.ipynb): run `mlnb nbval bless features`") in res.stdout
    assert "[ingest]" not in res.stdout.split("short test summary")[-1]  # only the changed notebook fails

    res = run_mlnb(project, "nbval", "bless", "features")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "## tests/nbval/features.ipynb::Cell 3 (id 5ff6d94b) changed" in res.stdout
    assert "-  train: 426 rows, test: 143 rows" in res.stdout and "+  training set: 426 rows, test: 143 rows" in \
        res.stdout
    assert "changed: features" in res.stdout
    res = nbval(project, "test_references.py", "features.ipynb", "train.ipynb")
    assert res.returncode == 0, res.stdout[-3000:]
    assert "passed" in res.stdout and "failed" not in res.stdout


def test_changed_seed_fails_naming_notebook_and_cell_with_the_output_diff(project: Path):
    ci = project / "env.ci.yaml"
    ci.write_text(ci.read_text().replace("  test_size: 0.25\n  seed: 42", "  test_size: 0.25\n  seed: 7"))
    res = run_mlnb(project, "nbval", "check", "train")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "tests/nbval/train.ipynb::Cell 3 (id 0220044b, 'with ctx.mlflow_run(experiment) as run:'): output " \
           "changed" in res.stderr
    assert "-  5-fold CV F1 on the train split: 0.9759 +/- 0.0073" in res.stdout
    assert "+  5-fold CV F1 on the train split: 0.98" in res.stdout
    res = nbval(project, "train.ipynb")  # the same verdict from nbval itself
    assert res.returncode == 1 and "FAILED tests/nbval/train.ipynb::Cell 3" in res.stdout, res.stdout[-3000:]
    ci.write_text(ci.read_text().replace("seed: 7", "seed: 42"))


def test_new_code_cell_is_stale_but_a_new_markdown_cell_is_not(project: Path):
    add_cell(project / "notebooks/train.ipynb", 4, "code", "added01", "print(pipeline.named_steps)")
    add_cell(project / "notebooks/ingest.ipynb", 1, "markdown", "note01", "A note shifts no comparison.")
    res = run_mlnb(project, "nbval", "check", "train", "ingest")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "stale reference (code cell 3 (id added01) was added in notebooks/train.ipynb)" in res.stderr
    rows = {ln.split()[0]: ln.split()[1] for ln in res.stdout.splitlines() if ln.startswith(("train ", "ingest "))}
    assert rows == {"train": "stale", "ingest": "ok"}, res.stdout


def test_a_raising_or_dying_notebook_fails_alone(tiny_project: Path):
    root = tiny_project
    # a notebook that dies only when nbval re-executes it (say, CI's memory limit): its build still works
    edit_cell(root / "notebooks/second.ipynb", "c2", "if mode == 'kill':",
              "if mode == 'kill' and 'MLNB_NBVAL_WORKSPACE' in os.environ:")
    (root / "env.ci.yaml").write_text((root / "env.yaml").read_text())
    res = run_mlnb(root, "nbval", "bless")
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted(p.name for p in (root / "tests/nbval").iterdir()) == [
        "conftest.py", "first.ipynb", "sanitize.cfg", "second.ipynb", "test_references.py"]
    for mode, status, why in (("raise", "failed", "task second failed in the nbval workspace build (env.ci.yaml): "
                                                  "cell 2 ("),
                              ("kill", "failed", "the kernel died while executing Cell 3 (id c2)")):
        (root / "env.ci.yaml").write_text((root / "env.yaml").read_text().replace("mode: ok", f"mode: {mode}"))
        res = run_mlnb(root, "nbval", "check")
        assert res.returncode == 1, res.stdout + res.stderr
        assert why in res.stderr, res.stderr
        rows = {ln.split()[0]: ln.split()[1] for ln in res.stdout.splitlines() if ln.startswith(("first ", "second "))}
        assert rows == {"first": "ok", "second": status}, res.stdout
        res = nbval(root, "first.ipynb", "second.ipynb")  # nbval runs with the same, current CI params
        assert res.returncode == 1, res.stdout[-3000:]  # tests failed; not 2/3 (interrupted, internal error)
        assert "tests/nbval/second.ipynb::Cell" in res.stdout and "tests/nbval/first.ipynb::Cell" not in res.stdout
        if mode == "kill":  # at once, naming the cell (stock nbval waits --nbval-cell-timeout, 2000 s)
            assert "the kernel died while executing Cell 3 (id c2)" in res.stdout, res.stdout[-3000:]
    res = run_mlnb(root, "nbval", "bless", "second")  # a dying notebook is never blessed
    assert res.returncode == 1 and "nothing blessed for second" in res.stderr, res.stderr
