"""The fork engine (`mlnb build` default): isolation, failures, Ctrl-C, parity with papermill,
parallel tasks, and the Ploomber-free up-to-date check. Real kernels, real MLflow store."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import MLNB, REPO, git_init, run_mlnb, write_notebook

pytestmark = pytest.mark.integration


def make_project(base: Path, tasks: dict[str, tuple[list[str], list[str]]], name: str = "proj") -> Path:
    """A project whose tasks are ``name -> (code cells, upstream)``; each task has products
    ``nb`` and ``out`` (a text file its last cell must write)."""
    root = base / name
    lines = ["tasks:"]
    for task, (cells, upstream) in tasks.items():
        write_notebook(root / f"notebooks/{task}.ipynb", [
            ("params", f"upstream = {upstream or None!r}\nproduct = None"), *(("code", c) for c in cells)])
        lines += [f"  - source: notebooks/{task}.ipynb",
                  f"    product: {{nb: products/{task}/{task}.ipynb, out: products/{task}/out.txt}}"]
    (root / "pipeline.yaml").write_text("\n".join(lines) + "\n")
    (root / "env.yaml").write_text("mlflow:\n  experiment: fast\n")
    git_init(root)
    return root


WRITE = "from pathlib import Path\nPath(product['out']).write_text('ok')"


TREE = "MLNB_TEST_TREE"


def tagged_env(tag: Path) -> dict[str, str]:
    """The environment of a build this test starts: every process of its tree inherits ``tag``."""
    return {TREE: str(tag)}


def leftovers(tag: Path) -> list[str]:
    """Live processes of this test's own build tree: those whose environment carries ``tag`` (see
    :func:`tagged_env`; kernels and the fork server inherit it). Another build on the machine, or
    another test, has another tag and is never counted."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if proc.pid == os.getpid() or proc.environ().get(TREE) != str(tag):
                continue
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(f"{proc.pid} {' '.join(proc.info['cmdline'] or [])[:100]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def test_leftovers_sees_its_own_tree_only(tmp_path: Path) -> None:
    """The leftover check can fail: it finds a grandchild of a tagged process (re-parented once its
    parent exits), and it ignores the same process started under another tag."""
    spawn = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
             "start_new_session=True)")
    mine, other = tmp_path / "mine", tmp_path / "other"
    for tag in (mine, other):
        subprocess.run([sys.executable, "-c", spawn], env={**os.environ, **tagged_env(tag)}, check=True)
    try:
        found = leftovers(mine)
        assert len(found) == 1 and "time.sleep(60)" in found[0]
    finally:
        for tag in (mine, other):
            for line in leftovers(tag):
                os.kill(int(line.split()[0]), signal.SIGKILL)
    assert leftovers(mine) == [] and leftovers(other) == []


# -- isolation: each task is a fresh process with a clean namespace -------------------------------

LEAKS = {
    "global": ("LEAKED = 1", "assert 'LEAKED' not in globals(), 'a global leaked'"),
    "monkeypatch": ("import json, pandas\njson.dumps = lambda *a, **k: 'patched'\n"
                    "pandas.set_option('display.max_rows', 3)\npandas.DataFrame.sum = lambda self: 'patched'",
                    "import json, pandas\nassert json.dumps({}) == '{}', 'json.dumps patched'\n"
                    "assert pandas.get_option('display.max_rows') == 60, 'pandas option leaked'\n"
                    "assert pandas.DataFrame({'a': [1]}).sum()['a'] == 1, 'pandas patched'"),
    "cwd": ("import os\nos.chdir('/')", "import os\nassert os.getcwd() == ROOT, os.getcwd()"),
    "environ": ("import os\nos.environ['MLNB_LEAK'] = '1'", "import os\nassert 'MLNB_LEAK' not in os.environ"),
    "sys.path": ("import sys\nsys.path.insert(0, '/leak')", "import sys\nassert '/leak' not in sys.path"),
}


@pytest.mark.parametrize("kind", sorted(LEAKS))
def test_a_task_cannot_leak_into_the_next(tmp_path: Path, kind: str) -> None:
    setup, check = LEAKS[kind]
    root = tmp_path / "proj"
    check = check.replace("ROOT", repr(str(root)))
    record_pid = "import os\nfrom pathlib import Path\nPath(product['out']).write_text(str(os.getpid()))"
    make_project(tmp_path, {
        "a": ([setup, record_pid], []),
        "b": ([check, "from pathlib import Path\nimport os\n"
                      "assert int(Path(upstream['a']['out']).read_text()) != os.getpid()\n" + WRITE], ["a"]),
    })
    result = run_mlnb(root, "build", "--no-dvc", "-j", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "products/b/out.txt").read_text() == "ok"


@pytest.mark.parametrize("kind", ["global", "monkeypatch", "environ"])
def test_the_leak_checks_fail_when_the_code_shares_a_kernel(tmp_path: Path, kind: str) -> None:
    """The checks above can fail: the same two cells in one notebook (one kernel) do leak."""
    setup, check = LEAKS[kind]
    root = make_project(tmp_path, {"a": ([setup, check, WRITE], [])})
    result = run_mlnb(root, "build", "--no-dvc")
    assert result.returncode == 1
    assert "AssertionError" in result.stderr


# -- failures: as under papermill -----------------------------------------------------------------

@pytest.mark.parametrize("mode, expected", [("raise", "ValueError: bad value 1"), ("kill", "DeadKernelError")])
def test_a_failing_task_fails_alike_on_both_engines(tiny_project: Path, mode: str, expected: str) -> None:
    (tiny_project / "env.yaml").write_text(f"first:\n  value: 1\nsecond:\n  mode: {mode}\nmlflow:\n  experiment: t\n")
    lines = {}
    for engine in ("papermill", "fork"):
        result = run_mlnb(tiny_project, "build", "--no-dvc", "--force", "--engine", engine,
                          env=tagged_env(tiny_project))
        assert result.returncode == 1, result.stdout + result.stderr
        failed = [ln for ln in result.stderr.splitlines() if ln.startswith("FAILED task")]
        assert len(failed) == 1 and expected in failed[0], result.stderr
        lines[engine] = failed[0]
        kept = tiny_project / "products/_failed/second/second.ipynb"
        assert kept.exists()
        assert not (tiny_project / "products/second/data.txt").exists()
        assert not (tiny_project / "products/second/.data.txt.metadata").exists()
        assert not leftovers(tiny_project), engine
    assert lines["fork"] == lines["papermill"]


def _start_build(root: Path, marker: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLNB_TEST_MARKER": str(marker), "PYTHONUNBUFFERED": "1",
           **tagged_env(root)}
    return subprocess.Popen([*MLNB, "build", "--no-dvc", *args], cwd=root, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.1)


SLEEPER = ("import os, time\nfrom pathlib import Path\n{ignore}\n"
           "Path(os.environ['MLNB_TEST_MARKER']).write_text('started')\ntime.sleep(300)")


@pytest.mark.parametrize("presses, ignore, expected", [
    (1, "", "KeyboardInterrupt"),
    (2, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)", "DeadKernelError"),
])
def test_ctrl_c_stops_the_running_task_and_leaves_no_process(tmp_path: Path, presses: int, ignore: str,
                                                             expected: str) -> None:
    """Ctrl-C interrupts the running cell (a second one kills a kernel that ignores it); the task
    is quarantined like any failure, later tasks are not run, nothing is left running."""
    root = make_project(tmp_path, {"a": ([WRITE], []), "slow": ([SLEEPER.format(ignore=ignore), WRITE], ["a"]),
                                   "after": ([WRITE], ["slow"])})
    marker = tmp_path / "marker"
    proc = _start_build(root, marker)
    _wait_for(marker, proc)
    for _ in range(presses):
        proc.send_signal(signal.SIGINT)
        time.sleep(1.5)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted" in err
    assert "FAILED task slow: cell 1" in err and expected in err, err
    kept = json.loads((root / "products/_failed/slow/slow.ipynb").read_text())
    assert any(o.get("ename") == "KeyboardInterrupt" for c in kept["cells"] for o in c.get("outputs", [])) \
        == (expected == "KeyboardInterrupt")
    assert not (root / "products/slow/out.txt").exists()
    assert not (root / "products/after/out.txt").exists()
    assert (root / "products/a/out.txt").exists()
    assert not leftovers(root)
    status = run_mlnb(root, "status")
    assert [ln.split()[:2] for ln in status.stdout.splitlines()[2:]] == [
        ["a", "up"], ["slow", "outdated"], ["after", "outdated"]]


# -- parity: the same executed notebooks as papermill ---------------------------------------------

PARITY_CELLS = [
    "import sys, warnings\nimport pandas as pd\nprint('to stdout')\nprint('to stderr', file=sys.stderr)",
    "warnings.warn('a user warning')",
    "df = pd.DataFrame({'a': [1, 2, 3], 'b': ['x', 'y', 'z']})\ndf",
    "from IPython.display import HTML, Markdown, display\ndisplay(HTML('<b>bold</b>'), Markdown('*md*'))",
    "import matplotlib.pyplot as plt\nfig, ax = plt.subplots(figsize=(2, 2))\nax.plot([1, 2, 3])\nplt.show()",
    "import numpy as np\nnp.arange(5).sum()",
    "import os\nprint(os.path.basename(os.getcwd()), __name__, type(__import__('IPython').get_ipython()).__name__)",
    "import sys\nprint(sys.argv[0].endswith('ipykernel_launcher.py'), sys.argv[1:2], sys.path[0] == '')",
    WRITE,
]


def _normalised(path: Path) -> dict:
    """The notebook without what differs between any two builds: timings, the build's run id,
    papermill's random cell id, and the kernel's pid in the file names of tracebacks and warnings."""
    nb = json.loads(re.sub(r"ipykernel_\d+", "ipykernel_PID", path.read_text()))
    nb["metadata"].pop("papermill", None)
    nb["metadata"].pop("mlnb", None)  # the build's run id
    for cell in nb["cells"]:
        cell["metadata"].pop("papermill", None)
        cell["metadata"].pop("execution", None)
        if "injected-parameters" in cell["metadata"].get("tags", []):
            cell.pop("id")  # papermill gives the cell it adds a random id on every run
    return nb


def test_executed_notebooks_match_papermill(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"show": (PARITY_CELLS, [])})
    out = {}
    for engine in ("papermill", "fork"):
        result = run_mlnb(root, "build", "--no-dvc", "--force", "--engine", engine)
        assert result.returncode == 0, result.stdout + result.stderr
        out[engine] = _normalised(root / "products/show/show.ipynb")
    assert any(o.get("data", {}).get("image/png") for c in out["fork"]["cells"] for o in c.get("outputs", []))
    for a, b in zip(out["papermill"]["cells"], out["fork"]["cells"], strict=True):
        assert a == b
    assert out["papermill"] == out["fork"]


# -- parallel tasks -------------------------------------------------------------------------------

# Each of two sibling tasks announces itself, then waits (up to ``wait`` s) for the other to have
# started: run at once, both see each other, however slowly the machine starts kernels; one after
# the other, the first never sees the second.
MEET = ("import json, os, time\nfrom pathlib import Path\nroom = Path({room!r})\nme, other = {me!r}, {other!r}\n"
        "(room / me).write_text('here')\ndeadline = time.monotonic() + {wait}\n"
        "while not (room / other).exists() and time.monotonic() < deadline:\n    time.sleep(0.05)\n"
        "met = (room / other).exists()\nPath(product['out']).write_text(json.dumps(met))")


@pytest.mark.parametrize("jobs", [1, 2])
def test_independent_tasks_run_at_once_and_are_tracked(tmp_path: Path, jobs: int) -> None:
    room = tmp_path / "room"
    room.mkdir()
    wait = 120 if jobs == 2 else 1  # with one job the first waits for nothing: don't wait long
    root = make_project(tmp_path, {
        "root": ([WRITE], []),
        "left": ([MEET.format(room=str(room), me="left", other="right", wait=wait)], ["root"]),
        "right": ([MEET.format(room=str(room), me="right", other="left", wait=wait)], ["root"]),
        "join": ([WRITE], ["left", "right"])})
    result = run_mlnb(root, "build", "--no-dvc", "-j", str(jobs))
    assert result.returncode == 0, result.stdout + result.stderr
    met = [json.loads((root / f"products/{t}/out.txt").read_text()) for t in ("left", "right")]
    assert sorted(met) == ([True, True] if jobs == 2 else [False, True])  # only two jobs overlap
    events = [ln.split()[1:3] for ln in result.stdout.splitlines() if ln[:2].isdigit() and ln[2] == ":"]
    assert sorted(t for e, t in events if e == "start") == ["join", "left", "right", "root"]
    assert sorted(t for e, t in events if e == "done") == ["join", "left", "right", "root"]
    assert events.index(["start", "join"]) > max(events.index(["done", "left"]), events.index(["done", "right"]))
    runs = _task_runs(root)
    assert sorted(runs) == ["join", "left", "right", "root"]
    assert set(runs.values()) == {"FINISHED"}


def _task_runs(root: Path) -> dict[str, str]:
    code = ("import json, mlflow\nfrom mlflow.tracking import MlflowClient\n"
            "mlflow.set_tracking_uri('sqlite:///mlflow.db')\nc = MlflowClient()\n"
            "e = c.get_experiment_by_name('fast')\n"
            "runs = c.search_runs([e.experiment_id], \"tags.`mlnb.kind` = 'task'\")\n"
            "print(json.dumps({r.data.tags['mlnb.task']: r.info.status for r in runs}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


# -- up to date without Ploomber ------------------------------------------------------------------

def test_a_no_op_build_and_status_import_neither_ploomber_nor_mlflow(tiny_project: Path) -> None:
    assert run_mlnb(tiny_project, "build", "--no-dvc").returncode == 0
    code = ("import sys\nfrom mlnb.cli import main as cli\nsys.argv = ['mlnb', sys.argv[1], *sys.argv[2:]]\n"
            "try:\n    cli.main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in ('ploomber', 'mlflow', 'papermill', 'pandas') if m in sys.modules))")
    for args in (["build", "--no-dvc"], ["status"]):
        out = subprocess.run([sys.executable, "-c", code, *args], cwd=tiny_project, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines()[-1] == "[]", out.stdout
    assert "Nothing to do" in run_mlnb(tiny_project, "build", "--no-dvc").stdout


def test_without_a_live_fork_server_the_engine_runs_a_stock_kernel(tmp_path: Path) -> None:
    import papermill as pm

    from mlnb.engine import kernel

    kernel.register()
    nb = write_notebook(tmp_path / "nb.ipynb", [("code", "import os\nprint(os.getppid())")])
    with kernel.ForkServer([], 1, tmp_path) as server:
        assert server.proc is not None
        pm.execute_notebook(str(nb), str(tmp_path / "forked.ipynb"), engine_name="mlnb", progress_bar=False)
        server.proc.kill()
        server.proc.wait()
        pm.execute_notebook(str(nb), str(tmp_path / "stock.ipynb"), engine_name="mlnb", progress_bar=False)
        parents = {name: int("".join(json.loads((tmp_path / f"{name}.ipynb").read_text())["cells"][0]["outputs"][0]["text"]))
                   for name in ("forked", "stock")}
        assert parents["forked"] == server.proc.pid  # a kernel forked by the server...
        assert parents["stock"] == os.getpid()  # ...then, with the server gone, one of ours
