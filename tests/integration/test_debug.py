"""Debugging a failed task where it failed: snapshot + manifest, `mlnb debug`, `mlnb build --resume`.
Real kernels (the fork engine), a file counter proving which cells ran."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import papermill as pm
import pytest

from tests.conftest import MLNB, REPO, run_mlnb
from tests.integration.test_fast_builds import make_project

pytestmark = pytest.mark.integration

COUNT = "from pathlib import Path\n_c = Path('counter.txt')\n_c.write_text((_c.read_text() if _c.exists() else '') + '{n}')\n"
CELLS = [
    COUNT.format(n=1) + "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2, 3]})\nprint('loaded', len(df))",
    COUNT.format(n=2) + "config = {'alpha': 0.5, 'names': ['x', 'y']}",
    COUNT.format(n=3) + "import time\ntime.sleep(1)  # the expensive cell\n"
                        "from sklearn.linear_model import LinearRegression\n"
                        "model = LinearRegression().fit(df[['a']], df['a'] * 2)",
    COUNT.format(n=4) + "gen = (i for i in range(3))\nlog = open('log.txt', 'w')\nimport threading\n"
                        "class Holder:\n    def __init__(self):\n        self.lock = threading.Lock()\n"
                        "holder = Holder()\nsquare = lambda x: x * x\nbig = b'x' * 300_000",
    COUNT.format(n=5) + "raise ValueError(f\"bad alpha {config['alpha']}\")",
    "from pathlib import Path\nPath(product['out']).write_text(str(model.predict(df[['a']]).round(6).tolist()))",
]
FIXED = COUNT.format(n=5) + "alpha = config['alpha']"


def set_cell(root: Path, index: int, source: str) -> None:
    path = root / "notebooks/t.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"][index]["source"] = source
    path.write_text(json.dumps(nb, indent=1))


@pytest.fixture
def failed(tmp_path: Path) -> Path:
    root = make_project(tmp_path, {"t": (CELLS, [])})
    result = run_mlnb(root, "build", "--no-dvc", "--snapshot-max-mb", "0.2")
    assert result.returncode == 1
    assert "FAILED task t: cell 5" in result.stderr and "mlnb debug t" in result.stderr
    assert (root / "counter.txt").read_text() == "12345"
    return root


def test_the_manifest_and_snapshot_describe_the_failure(failed: Path) -> None:
    snap = failed / ".mlnb/snapshots/t"
    manifest = json.loads((snap / "manifest.json").read_text())
    assert manifest["task"] == "t" and manifest["cell"]["index"] == 5 and manifest["cell"]["id"] == "c5"
    assert manifest["error"] == {"ename": "ValueError", "evalue": "bad alpha 0.5"}
    assert manifest["kernel_died"] is False and len(manifest["source_sha256"]) == 64
    assert [c["id"] for c in manifest["cells"]] == ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]
    assert manifest["params"] == {} and manifest["upstream"] == {}
    snapshot = manifest["snapshot"]
    assert {"df", "config", "model", "square", "Holder", "product"} <= set(snapshot["saved"])
    assert snapshot["modules"]["pd"] == "pandas"
    assert set(snapshot["unpicklable"]) == {"gen", "holder", "log"}
    assert "generator" in snapshot["unpicklable"]["gen"] and "lock" in snapshot["unpicklable"]["holder"]
    assert snapshot["too_big"] == ["big"]  # 300 kB over the 0.2 MB limit: listed, not silently dropped


def test_the_debug_notebook_restores_the_variables_and_fails_at_the_same_cell(failed: Path) -> None:
    (failed / "counter.txt").write_text("")
    out = run_mlnb(failed, "debug", "t")
    assert out.returncode == 0, out.stderr
    path = failed / "products/_failed/t/t.debug.ipynb"
    assert "products/_failed/t/t.debug.ipynb" in out.stdout
    nb = json.loads(path.read_text())
    assert nb["cells"][2]["id"] == "c5"  # intro, restore, then the failing cell on
    nb["cells"].insert(2, {"cell_type": "code", "id": "check", "metadata": {}, "outputs": [], "execution_count": None,
                           "source": "assert df['a'].tolist() == [1, 2, 3]\n"
                                     "assert config == {'alpha': 0.5, 'names': ['x', 'y']}\n"
                                     "assert model.predict(df[['a']]).round(6).tolist() == [2.0, 4.0, 6.0]\n"
                                     "assert square(4) == 16 and 'gen' not in globals()"})
    path.write_text(json.dumps(nb))
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(path), str(failed / "debugged.ipynb"), progress_bar=False, cwd=str(path.parent))
    assert err.value.ename == "ValueError" and err.value.evalue == "bad alpha 0.5"
    assert err.value.cell_index == 3  # the failing cell, after the restore and the check
    assert (failed / "counter.txt").read_text() == "5"  # cells 1-4 were not re-run


def test_debug_pdb_drops_into_the_failing_frame(failed: Path) -> None:
    proc = subprocess.run([*MLNB, "debug", "t", "--pdb"], cwd=failed, input="p config['alpha'] * 10\np len(df)\nq\n",
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "ValueError: bad alpha 0.5" in proc.stdout + proc.stderr
    assert "(Pdb) 5.0" in proc.stdout and "(Pdb) 3" in proc.stdout


def test_resume_runs_only_the_fixed_cell_on_and_matches_a_full_run(failed: Path, tmp_path: Path) -> None:
    set_cell(failed, 5, FIXED)
    (failed / "counter.txt").write_text("")
    result = run_mlnb(failed, "build", "--no-dvc", "--resume")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resume: t: resumes at cell 5" in result.stdout
    assert (failed / "counter.txt").read_text() == "5"
    resumed = (failed / "products/t/out.txt").read_text()
    nb = json.loads((failed / "products/t/t.ipynb").read_text())
    restored = [c["id"] for c in nb["cells"] if c["metadata"].get("mlnb", {}).get("restored")]
    assert restored[-4:] == ["c1", "c2", "c3", "c4"]
    first = next(c for c in nb["cells"] if c["id"] == "c1")
    assert "".join(first["outputs"][0]["text"]) == "loaded 3\n"  # an earlier cell's output, from the partial run
    counts = [c["execution_count"] for c in nb["cells"] if c["cell_type"] == "code"]
    assert counts == sorted(counts) and None not in counts  # numbered on from the restored cells
    assert not (failed / ".mlnb/snapshots/t").exists()  # cleaned once the task succeeded
    assert "Nothing to do" in run_mlnb(failed, "build", "--no-dvc").stdout
    (failed / "counter.txt").write_text("")
    assert run_mlnb(failed, "build", "--no-dvc", "--force").returncode == 0
    assert (failed / "counter.txt").read_text() == "12345"  # a full run, for comparison...
    assert (failed / "products/t/out.txt").read_text() == resumed  # ...makes the same product


def test_resume_runs_from_the_start_when_an_earlier_cell_changed(failed: Path) -> None:
    set_cell(failed, 5, FIXED)
    set_cell(failed, 2, COUNT.format(n=2) + "config = {'alpha': 0.25, 'names': ['x', 'y']}")
    (failed / "counter.txt").write_text("")
    result = run_mlnb(failed, "build", "--no-dvc", "--resume")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resume: t: runs from the start: cell 2 changed" in result.stdout
    assert (failed / "counter.txt").read_text() == "12345"


def test_a_dead_kernel_leaves_a_manifest_that_says_so(tmp_path: Path) -> None:
    cells = [*CELLS[:4], COUNT.format(n=5) + "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", CELLS[5]]
    root = make_project(tmp_path, {"t": (cells, [])})
    assert run_mlnb(root, "build", "--no-dvc").returncode == 1
    snap = root / ".mlnb/snapshots/t"
    manifest = json.loads((snap / "manifest.json").read_text())
    assert manifest["kernel_died"] is True and manifest["snapshot"] is None
    assert not (snap / "namespace.pkl").exists()
    out = run_mlnb(root, "debug", "t")
    assert out.returncode == 2 and "kernel died at cell 5" in out.stderr and "no snapshot" in out.stderr
    resumed = run_mlnb(root, "build", "--no-dvc", "--resume")
    assert "runs from the start: its kernel died" in resumed.stdout


def test_a_task_failing_early_is_debugged_by_re_running_its_cheap_cells(tmp_path: Path) -> None:
    """No copy before 1 s of cells (it would cost more than it saves): the manifest says so, the
    debug notebook re-runs the cells with the params the task ran with, --resume starts over."""
    cells = [COUNT.format(n=1) + "numbers = [1, 2, 3]", COUNT.format(n=2) + "raise KeyError(sum(numbers))",
             "from pathlib import Path\nPath(product['out']).write_text('ok')"]
    root = make_project(tmp_path, {"t": (cells, [])})
    cheap = {"MLNB_SNAPSHOT_AFTER_S": "60"}  # "cheap" however slowly a busy machine runs two tiny cells
    assert run_mlnb(root, "build", "--no-dvc", env=cheap).returncode == 1
    manifest = json.loads((root / ".mlnb/snapshots/t/manifest.json").read_text())
    assert manifest["snapshot"] is None and manifest["cheap"]["seconds_before"] < manifest["cheap"]["threshold_s"] == 60
    assert run_mlnb(root, "debug", "t").returncode == 0
    path = root / "products/_failed/t/t.debug.ipynb"
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(path), str(tmp_path / "out.ipynb"), progress_bar=False, cwd=str(path.parent))
    assert err.value.ename == "KeyError" and err.value.evalue == "6"
    resumed = run_mlnb(root, "build", "--no-dvc", "--resume", env=cheap)
    assert "runs from the start: the cells before the failing one took" in resumed.stdout


def test_a_task_that_failed_before_any_cell_gets_a_one_line_answer(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"t": (["print(undefined_name)"], [])})  # Ploomber's pyflakes check refuses it
    assert run_mlnb(root, "build", "--no-dvc").returncode == 1
    out = run_mlnb(root, "debug", "t")
    assert out.returncode == 2 and "failed before any cell ran" in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("state", ["default", "elsewhere"])
def test_a_script_task_resumes_at_its_failing_cell(tmp_path: Path, state: str) -> None:
    """A jupytext script (Ploomber's most common task): its notebook gets new cell ids on every run, so
    the failing cell is found by its position among the script's cells. With ``MLNB_STATE_DIR`` outside
    the project, the lock, snapshot and manifest live there and the project gets no ``.mlnb/``."""
    env = {"MLNB_STATE_DIR": str(tmp_path / "state")} if state == "elsewhere" else None
    root = tmp_path / "script"
    root.mkdir()
    (root / "pipeline.yaml").write_text("tasks:\n  - source: step.py\n    product:\n      nb: out/step.ipynb\n"
                                        "      data: out/data.txt\n")
    cells = ['upstream = None\nproduct = None', COUNT.format(n=1) + "x = 41",
             COUNT.format(n=2) + "import time\ntime.sleep(1)  # the expensive cell",
             COUNT.format(n=3) + "raise ValueError('boom')",
             "Path(product['data']).write_text(str(x + 1))"]
    script = root / "step.py"
    script.write_text('# %% tags=["parameters"]\n' + "\n\n# %%\n".join(cells) + "\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    failed = run_mlnb(root, "build", "--no-dvc", env=env)
    assert failed.returncode == 1 and "FAILED task step: cell 3" in failed.stderr, failed.stderr
    debug = run_mlnb(root, "debug", "step", env=env)
    assert debug.returncode == 0, debug.stderr
    nb = json.loads((root / "products/_failed/step/step.debug.ipynb").read_text())
    assert any("raise ValueError('boom')" in "".join(c["source"]) for c in nb["cells"])
    script.write_text(script.read_text().replace("raise ValueError('boom')", "x += 0"))
    (root / "counter.txt").write_text("")
    resumed = run_mlnb(root, "build", "--no-dvc", "--resume", env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resume: step: resumes at cell 3" in resumed.stdout
    assert (root / "counter.txt").read_text() == "3"  # cells 1 and 2 restored, not run again
    assert (root / "out/data.txt").read_text() == "42"
    assert (root / ".mlnb").is_dir() == (state == "default")
    assert (tmp_path / "state" / "build.lock").exists() == (state == "elsewhere")
