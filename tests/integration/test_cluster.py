"""``mlnb build --executor dask`` on a real cluster: a ``dask scheduler`` and two ``dask worker`` processes, each
worker in its own empty directory, a local-directory DVC remote, a real ``mlflow server``. The build is the
installed CLI, as a user runs it; nothing is shared with the workers but the scheduler, the tracking server
and the remote."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster_fixtures import Cluster, start_cluster
from tests.conftest import MLNB, REPO, copy_project, git_init, run_mlnb, write_notebook

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = start_cluster(tmp_path_factory.mktemp("cluster"))
    yield running
    running.close()


def _env(cluster: Cluster, remote: Path) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": cluster.tracking, "MLNB_DVC_REMOTE": str(remote),
            "MLNB_DASK_SCHEDULER": cluster.scheduler}


def _children(cluster: Cluster, experiment: str, build_run: str) -> dict[str, object]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=cluster.tracking)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{build_run}'")
    return {r.data.tags["mlnb.task"]: r for r in runs if r.data.tags.get("mlnb.kind") == "task"
            and "mlnb.status" in r.data.tags}


def test_the_example_pipeline_builds_on_the_cluster_as_it_does_locally(tmp_path: Path, cluster: Cluster) -> None:
    local = copy_project(tmp_path / "local")
    built = run_mlnb(local, "build", "--no-dvc")
    assert built.returncode == 0, built.stdout + built.stderr
    expected = json.loads((local / "products/evaluate/metrics.json").read_text())

    project = copy_project(tmp_path / "p")
    remote = tmp_path / "remote"
    remote.mkdir()
    proc = run_mlnb(project, "build", "--executor", "dask", env=_env(cluster, remote))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads((project / "products/evaluate/metrics.json").read_text()) == expected
    assert "gate: promotable" in proc.stdout + proc.stderr
    for task in ("ingest", "validate", "features", "train", "evaluate", "export"):
        assert f"start  {task}" in proc.stdout and f"done   {task}" in proc.stdout
    # the outputs came back and are recorded as a local build's are
    assert (project / "products/export/model/MLmodel").is_file()
    assert "recorded in DVC (dvc.lock): ingest, validate, features, train, evaluate, export" in proc.stdout
    lock = (project / "dvc.lock").read_text()
    assert "products/train/model.joblib" in lock
    # ... through the remote, by content hash
    from mlnb.adapters.dvc.objects import file_md5, object_path

    assert object_path(remote, file_md5(project / "products/train/model.joblib")).is_file()
    # each task ran on a worker process (not in the build), and its child run says which
    run_id = json.loads((project / "products/last_build.json").read_text())["run_id"]
    children = _children(cluster, "mlnb-example", run_id)
    assert set(children) == {"ingest", "validate", "features", "train", "evaluate", "export"}
    worker_pids = {pid for name in cluster.workers for pid in cluster.pids(name)}
    for task, child in children.items():
        assert child.data.tags["mlnb.status"] == "executed", task
        assert int(child.data.tags["mlnb.worker"].rsplit(":", 1)[1]) in worker_pids, task
    # the workers never wrote into the project, and never ran it from there
    assert not list(project.glob("dask-scratch-space*"))
    copies = [p for name in cluster.workers for p in (cluster.base / name).rglob("pipeline.yaml")]
    assert copies, "a worker works in its own copy of the sources"


def _diamond(base: Path, stamps: Path) -> Path:
    """a -> (b, c) -> d; b and c note when they ran; d fails when asked."""
    root = base / "diamond"
    write_notebook(root / "a.ipynb", [("params", "upstream = None\nproduct = None"),
                                      ("code", "from pathlib import Path\nPath(product['data']).write_text('1')")])
    for name in ("b", "c"):
        write_notebook(root / f"{name}.ipynb", [
            ("params", "upstream = ['a']\nproduct = None\nstamps = ''"),
            ("code", "import time, json\nfrom pathlib import Path\nt0 = time.time()\ntime.sleep(2)\n"
                     "x = int(Path(upstream['a']['data']).read_text())\n"
                     f"Path(product['data']).write_text(str(x + {ord(name) - 96}))\n"
                     f"Path(stamps, '{name}.json').write_text(json.dumps([t0, time.time()]))"),
        ])
    write_notebook(root / "d.ipynb", [
        ("params", "upstream = ['b', 'c']\nproduct = None\nfail = False"),
        ("code", "from pathlib import Path\n"
                 "total = sum(int(Path(upstream[t]['data']).read_text()) for t in ('b', 'c'))"),
        ("code", "if fail:\n    raise ValueError(f'asked to fail with total {total}')"),
        ("code", "Path(product['data']).write_text(str(total))"),
    ])
    (root / "env.yaml").write_text(f"stamps: {stamps}\nfail: false\nmlflow:\n  experiment: diamond\n")
    # a's on_finish hook runs once, where the build runs (the worker runs only the task's code)
    (root / "hooks.py").write_text("import os\nfrom pathlib import Path\n\n\ndef finished(product):\n"
                                   f"    with open(Path({str(stamps)!r}, 'a.hook'), 'a') as fh:\n"
                                   "        fh.write(f'{os.getpid()}\\n')\n")
    tasks = "tasks:\n  - source: a.ipynb\n    product: {nb: out/a.ipynb, data: out/a.txt}\n    on_finish: hooks.finished\n"
    for name in ("b", "c"):
        tasks += (f"  - source: {name}.ipynb\n    product: {{nb: out/{name}.ipynb, data: out/{name}.txt}}\n"
                  "    params: {stamps: '{{stamps}}'}\n")
    tasks += "  - source: d.ipynb\n    product: {nb: out/d.ipynb, data: out/d.txt}\n    params: {fail: '{{fail}}'}\n"
    (root / "pipeline.yaml").write_text(tasks)
    git_init(root)
    return root


def test_a_diamond_runs_its_branches_at_once_and_a_failing_task_is_quarantined(tmp_path: Path,
                                                                               cluster: Cluster) -> None:
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    root = _diamond(tmp_path, stamps)
    env = _env(cluster, tmp_path / "remote")
    (tmp_path / "remote").mkdir()
    proc = run_mlnb(root, "build", "--executor", "dask", env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (root / "out/d.txt").read_text() == "7"  # (1 + 2) + (1 + 3)
    b, c = (json.loads((stamps / f"{n}.json").read_text()) for n in ("b", "c"))
    assert b[0] < c[1] and c[0] < b[1], f"b and c did not overlap: {b} {c}"
    assert len((stamps / "a.hook").read_text().split()) == 1

    # d fails: its upstream is up to date (sent from here, not rebuilt), d's partial notebook comes back
    failed = run_mlnb(root, "build", "--executor", "dask", "-p", "fail=true", env=env)
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    assert "start  b" not in failed.stdout and "start  d" in failed.stdout
    assert "FAILED task d: cell 2 ('if fail:')" in failed.stderr and "ValueError: asked to fail with total 7" in failed.stderr
    partial = root / "products/_failed/d/d.ipynb"
    assert partial.is_file() and "asked to fail" in partial.read_text()
    assert not (root / "out/d.txt").exists() and not (root / "out/d.ipynb").exists()
    run_id = json.loads((root / "products/last_build.json").read_text())["run_id"]
    assert _children(cluster, "diamond", run_id)["d"].data.tags["mlnb.status"] == "failed"


def test_refusals_in_one_line(tmp_path: Path, cluster: Cluster) -> None:
    root = _diamond(tmp_path, tmp_path)
    sqlite = run_mlnb(root, "build", "--executor", "dask", env={"MLNB_DASK_SCHEDULER": cluster.scheduler,
                                                               "MLNB_DVC_REMOTE": str(tmp_path)})
    assert sqlite.returncode == 2
    assert sqlite.stderr.count("\n") == 1 and "MLFLOW_TRACKING_URI" in sqlite.stderr and "sqlite:" in sqlite.stderr
    no_remote = run_mlnb(root, "build", "--executor", "dask", env={"MLFLOW_TRACKING_URI": cluster.tracking})
    assert no_remote.returncode == 2 and "DVC remote" in no_remote.stderr and no_remote.stderr.count("\n") == 1
    stock = run_mlnb(root, "build", "--executor", "dask", "--engine", "papermill", env=_env(cluster, tmp_path))
    assert stock.returncode == 2 and "--engine papermill" in stock.stderr and stock.stderr.count("\n") == 1
    assert not (root / "out").exists() and not (root / "mlflow.db").exists()


def test_a_failure_on_a_worker_is_debugged_here_and_resumed_on_the_cluster(tmp_path: Path, cluster: Cluster) -> None:
    """The failed task's snapshot comes back with its partial notebook: `mlnb debug` opens it on this machine,
    and `--resume` sends it to a worker, which runs only the fixed cell on (a counter outside the project)."""
    counter = tmp_path / "counter.txt"
    count = f"from pathlib import Path\n_c = Path({str(counter)!r})\n_c.write_text((_c.read_text() if _c.exists() else '') + '{{n}}')\n"
    root = tmp_path / "p"
    cells = [("params", "upstream = None\nproduct = None"),
             ("code", count.format(n=1) + "import time\ntime.sleep(1.5)  # worth a snapshot\nx = 41"),
             ("code", count.format(n=2) + "raise ValueError(f'x is {x}')"),
             ("code", "Path(product['data']).write_text(str(x + 1))")]
    write_notebook(root / "t.ipynb", cells)
    (root / "pipeline.yaml").write_text("tasks:\n  - source: t.ipynb\n    product: {nb: out/t.ipynb, data: out/t.txt}\n")
    (root / "env.yaml").write_text("mlflow:\n  experiment: resumed\n")
    git_init(root)
    (tmp_path / "remote").mkdir()
    env = _env(cluster, tmp_path / "remote")
    failed = run_mlnb(root, "build", "--executor", "dask", env=env)
    assert failed.returncode == 1 and "ValueError: x is 41" in failed.stderr, failed.stdout[-2000:] + failed.stderr
    assert counter.read_text() == "12"
    manifest = json.loads((root / ".mlnb/snapshots/t/manifest.json").read_text())
    assert manifest["cell"]["index"] == 2 and manifest["snapshot"] and "x" in manifest["snapshot"]["saved"]
    assert run_mlnb(root, "debug", "t").returncode == 0  # opened here, from the worker's snapshot
    assert (root / "products/_failed/t/t.debug.ipynb").is_file()

    cells[2] = ("code", count.format(n=2) + "x = x + 0")
    write_notebook(root / "t.ipynb", cells)
    resumed = run_mlnb(root, "build", "--executor", "dask", "--resume", env=env)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert "resume: t: resumes at cell 2" in resumed.stdout
    assert counter.read_text() == "122"  # cell 1 (the slow one) did not run again
    assert (root / "out/t.txt").read_text() == "42"
    assert not (root / ".mlnb/snapshots/t").exists()


def test_a_worker_without_this_mlnb_is_refused(tmp_path: Path) -> None:
    """A worker whose mlnb is another version (its metadata says 9.9.9) is named, and nothing runs."""
    fake = tmp_path / "site"
    dist = fake / "mlnb-9.9.9.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mlnb\nVersion: 9.9.9\n")
    other = start_cluster(tmp_path / "c", workers=0, tracking=False)
    try:
        other.add_worker("old", env={"PYTHONPATH": f"{fake}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
        other.wait_for(1)
        root = _diamond(tmp_path, tmp_path)
        proc = run_mlnb(root, "build", "--executor", "dask", "--scheduler", other.scheduler, "--shared-fs")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        last = proc.stderr.strip().splitlines()[-1]
        assert "has mlnb 9.9.9, this build" in last and "Traceback" not in proc.stderr
        assert not (root / "out").exists()
    finally:
        other.close()


def test_a_sweep_on_the_cluster_runs_its_shared_task_once(tmp_path: Path, cluster: Cluster) -> None:
    """A 2x3 grid over `b`'s parameters, every point's tasks on the workers: `a` (upstream, unswept) runs once."""
    root = tmp_path / "sw"
    write_notebook(root / "a.ipynb", [("params", "upstream = None\nproduct = None"),
                                      ("code", "from pathlib import Path\nPath(product['data']).write_text('3')")])
    write_notebook(root / "b.ipynb", [
        ("params", "upstream = ['a']\nproduct = None\nx = 1\ny = 'p'"),
        ("code", "import json\nfrom pathlib import Path\nbase = int(Path(upstream['a']['data']).read_text())\n"
                 "Path(product['data']).write_text(json.dumps({'score': base * x + len(y)}))"),
    ])
    (root / "env.yaml").write_text("x: 1\ny: p\nmlflow:\n  experiment: sw\n")
    (root / "pipeline.yaml").write_text(
        "tasks:\n  - source: a.ipynb\n    product: {nb: out/a.ipynb, data: out/a.txt}\n"
        "  - source: b.ipynb\n    product: {nb: out/b.ipynb, data: out/b.json}\n"
        "    params: {x: '{{x}}', y: '{{y}}'}\n")
    git_init(root)
    (tmp_path / "remote").mkdir()
    proc = run_mlnb(root, "sweep", "-p", "x=1,2", "-p", "y=p,qq,rrr", "-j", "2", "--executor", "dask",
                    env=_env(cluster, tmp_path / "remote"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "shared tasks (run once): a" in proc.stdout
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=cluster.tracking)
    exp = client.get_experiment_by_name("sw")
    (sweep,) = client.search_runs([exp.experiment_id], "tags.`mlnb.kind` = 'sweep'")
    builds = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{sweep.info.run_id}'")
    assert len(builds) == 6 and all(b.data.tags["mlnb.executor"] == "dask" for b in builds)
    ran: dict[str, int] = {}
    for build in builds:
        for task, child in _children(cluster, "sw", build.info.run_id).items():
            assert child.data.tags["mlnb.worker"]
            ran[task] = ran.get(task, 0) + 1
    assert ran == {"a": 1, "b": 6}


def _slow_project(base: Path, marker: Path, seconds: float) -> Path:
    root = base / "slow"
    write_notebook(root / "first.ipynb", [("params", "upstream = None\nproduct = None"),
                                          ("code", "from pathlib import Path\nPath(product['data']).write_text('1')")])
    write_notebook(root / "slow.ipynb", [
        ("params", "upstream = ['first']\nproduct = None\nmarker = ''\nseconds = 1.0"),
        ("code", "import os, time\nfrom pathlib import Path\n"
                 "Path(marker, f'{os.getpid()}.started').write_text('')\ntime.sleep(seconds)"),
        ("code", "Path(product['data']).write_text('done')"),
    ])
    (root / "env.yaml").write_text(f"marker: {marker}\nseconds: {seconds}\nmlflow:\n  experiment: slow\n")
    (root / "pipeline.yaml").write_text(
        "tasks:\n  - source: first.ipynb\n    product: {nb: out/first.ipynb, data: out/first.txt}\n"
        "  - source: slow.ipynb\n    product: {nb: out/slow.ipynb, data: out/slow.txt}\n"
        "    params: {marker: '{{marker}}', seconds: '{{seconds}}'}\n")
    git_init(root)
    return root


def _start_build(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([*MLNB, "build", "--executor", "dask", *args], cwd=root, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO), **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_started(marker: Path, proc: subprocess.Popen, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(marker.glob("*.started"))
        if found:
            return int(found[0].name.split(".")[0])
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("the slow task never started")


def test_ctrl_c_stops_the_build_and_the_task_on_its_worker(tmp_path: Path, cluster: Cluster) -> None:
    import psutil

    marker = tmp_path / "marker"
    marker.mkdir()
    root = _slow_project(tmp_path, marker, seconds=60)
    (tmp_path / "remote").mkdir()
    proc = _start_build(root, _env(cluster, tmp_path / "remote"))
    kernel = _wait_started(marker, proc)
    assert cluster.worker_owning(kernel) is not None, "the task must run on one of the workers"
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert time.monotonic() - t0 < 30
    assert "interrupted" in err and not (root / "out/slow.txt").exists()
    deadline = time.monotonic() + 20  # the worker kills the cancelled task's kernel, not waiting for its 60 s
    while psutil.pid_exists(kernel) and psutil.Process(kernel).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the cancelled task's kernel is still running on its worker"
        time.sleep(0.2)


def test_a_worker_killed_mid_task_runs_it_again_on_another(tmp_path: Path, cluster: Cluster) -> None:
    """Last in this module: it kills one of the cluster's two workers."""
    marker = tmp_path / "marker"
    marker.mkdir()
    root = _slow_project(tmp_path, marker, seconds=4)
    (tmp_path / "remote").mkdir()
    cluster.wait_for(2)
    proc = _start_build(root, _env(cluster, tmp_path / "remote"))
    kernel = _wait_started(marker, proc)
    victim = cluster.worker_owning(kernel)
    assert victim is not None
    cluster.kill_worker(victim)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    assert (root / "out/slow.txt").read_text() == "done"
    assert len(list(marker.glob("*.started"))) == 2, "the task ran again after its worker died"
    run_id = json.loads((root / "products/last_build.json").read_text())["run_id"]
    child = _children(cluster, "slow", run_id)["slow"]
    assert child.data.tags["mlnb.status"] == "executed"
    (survivor,) = set(cluster.workers) - {victim}
    assert int(child.data.tags["mlnb.worker"].rsplit(":", 1)[1]) in cluster.pids(survivor)
