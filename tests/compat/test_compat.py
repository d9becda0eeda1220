"""Ploomber compatibility (issue 20): each project under ``projects/`` is built by stock ``ploomber build``
in one copy and by ``mlnb build`` in another; both must end the same way and make the same products
(data files by value, notebooks by their cell outputs, HTML renders by their output text).

All 2 x N builds start at once (each is a subprocess mostly waiting on kernels), so the suite takes about
as long as its slowest pair.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.compat

PROJECTS = Path(__file__).parent / "projects"
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OFFLINE = {"PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "true", "MLFLOW_DISABLE_TELEMETRY": "true",
           "DO_NOT_TRACK": "1"}
# project -> exit code both must end with (0: built; 1: a task failed)
EXPECTED = {"early_stop": 0, "early_stop_task": 0, "missing_product": 1, "placeholders": 0, "grid": 0,
            "scripts": 0, "functions": 0, "params_cell": 0, "parallel": 0, "entry_point": 0, "package_layout": 0,
            "import_tasks": 0, "location": 0, "factory_entry": 0, "sql": 0, "directory": 0, "directory_glob": 0,
            "meta_extract": 0, "setup_cfg": 0, "env_entry_point": 0,
            "serializers": 0, "file_client": 0, "sqlalchemy": 0, "hooks": 0, "hooks_failure": 1,
            # shapes of Ploomber's published examples (ploomber/projects), written anew for mlnb
            "function_fails": 1, "script_fails": 1, "source_loader": 0, "numbered_steps": 0, "env_flags": 0,
            "hooks_once": 0, "hooks_rebuilt": 0}
# project -> arguments both builds get (Ploomber's --entry-point; the others use the default lookup)
ARGS = {"entry_point": ["--entry-point", "pipeline.serve.yaml"], "factory_entry": ["--entry-point", "factory.make"],
        "directory": ["--entry-point", "tasks"], "directory_glob": ["--entry-point", "tasks/*.py"],
        "env_flags": ["--env--greeting--lang", "fr", "--env--greeting--word", "salut", "--env--times", "2"]}
# project -> environment variables both builds get (Ploomber's ENTRY_POINT instead of --entry-point)
ENV = {"env_entry_point": {"ENTRY_POINT": "pipeline.serve.yaml"}, "hooks_failure": {"COMPAT_FAIL_TOTAL": "1"}}
# project -> the folder it is built from, when another project's sources serve (the factory that
# `location:` names is the one `--entry-point factory.make` calls)
SOURCE = {"factory_entry": "location", "directory_glob": "directory", "env_entry_point": "entry_point",
          "hooks_failure": "hooks", "hooks_rebuilt": "hooks"}
# projects built twice, the hooks' traces cleared in between: the second build has every task up to date,
# and the DAG's on_render/on_finish and the tasks' on_render still run (as under `ploomber build`)
TWICE = {"hooks_rebuilt"}

FIXED_DATE = "2026-01-01T00:00:00+0000"
# what a stock kernel that lost the cross-process port race says (jupyter_client picks free ports, the
# kernel binds them later)
PORT_RACE = "Kernel died before replying to kernel_info"


@dataclass
class Built:
    root: Path
    code: int
    log: str


def _build(tool: str, name: str, dest: Path, retry: bool = False) -> Built:
    shutil.copytree(PROJECTS / SOURCE.get(name, name), dest)
    for args in (["init", "-q", "-b", "main"], ["-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q",
                                                 "--allow-empty", "-m", "init"]):
        # a fixed date: the same commit (d0464b4) in every copy, so {{git_hash}} compares by value (and is
        # never all digits, which Ploomber's placeholder expansion would turn into an int)
        subprocess.run(["git", *args], cwd=dest, check=True, capture_output=True,
                       env={**os.environ, "GIT_AUTHOR_DATE": FIXED_DATE, "GIT_COMMITTER_DATE": FIXED_DATE})
    env = {**os.environ, **OFFLINE, "PYTHONPATH": str(REPO), **ENV.get(name, {})}
    cmd = [str(BIN / "ploomber"), "build"] if tool == "ploomber" else [sys.executable, "-m", "mlnb.cli", "build"]
    cmd += ARGS.get(name, [])
    done = subprocess.run(cmd, cwd=dest, env=env, capture_output=True, text=True, timeout=300)
    if name in TWICE and done.returncode == 0:
        shutil.rmtree(dest / "out" / "hooks")
        done = subprocess.run(cmd, cwd=dest, env=env, capture_output=True, text=True, timeout=300)
    log = done.stdout + done.stderr
    if tool == "ploomber" and PORT_RACE in log and not retry:
        # A stock kernel (jupyter_client's LocalProvisioner) is given ports another process picked too:
        # twelve builds start kernels at once here. Not what this suite compares: build that copy again.
        # (mlnb's fork-server kernels bind their own ports, so an mlnb build is never retried.)
        shutil.rmtree(dest)
        return _build(tool, name, dest, retry=True)
    return Built(dest, done.returncode, log)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Built]:
    base = tmp_path_factory.mktemp("compat")
    jobs = [(tool, name) for name in EXPECTED for tool in ("ploomber", "mlnb")]
    with ThreadPoolExecutor(max_workers=6) as pool:  # more only thrash a small machine's cores
        futures = {job: pool.submit(_build, job[0], job[1], base / job[0] / job[1]) for job in jobs}
        return {job: f.result() for job, f in futures.items()}


def _outputs(nb_path: Path) -> list[list[str]]:
    """A notebook's cell outputs (text and data), papermill's injected cell and timings/ids left out."""
    nb = json.loads(nb_path.read_text())
    out = []
    for cell in nb["cells"]:
        if "injected-parameters" in (cell.get("metadata", {}).get("tags") or []):
            continue
        shown = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                shown.append("".join(o["text"]))
            elif o.get("output_type") in ("execute_result", "display_data"):
                shown.append("".join(o["data"].get("text/plain", "")))
            elif o.get("output_type") == "error":
                shown.append(f"{o['ename']}: {o['evalue']}")
        out.append(shown)
    return out


def _html_text(path: Path) -> list[str]:
    """The output areas' text of an nbconvert HTML render."""
    html = path.read_text()
    blocks = re.findall(r'<div class="[^"]*jp-OutputArea-output[^"]*"[^>]*>(.*?)</div>', html, flags=re.S)
    return [re.sub(r"<[^>]+>", "", b).strip() for b in blocks]


def _products(root: Path) -> dict[str, object]:
    """Products under out/, and their copies under remote/ (the file_client project's storage client)."""
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):  # every file under a folder named out/ or remote/ (a spec's own folder's too)
        parts = path.relative_to(root).parts[:-1]
        if path.is_dir() or path.name.startswith(".") or not {"out", "remote"} & set(parts):
            continue
        rel = str(path.relative_to(root))
        if path.suffix == ".ipynb":
            found[rel] = _outputs(path)
        elif path.suffix == ".html":
            found[rel] = _html_text(path)
        elif path.suffix == ".json":
            found[rel] = json.loads(path.read_text())
        else:
            found[rel] = path.read_bytes()
    return found


@pytest.mark.parametrize("name", list(EXPECTED))
def test_mlnb_builds_what_ploomber_builds(builds: dict[tuple[str, str], Built], name: str) -> None:
    stock, ours = builds[("ploomber", name)], builds[("mlnb", name)]
    assert stock.code == EXPECTED[name], f"stock ploomber build of {name}:\n{stock.log[-3000:]}"
    assert ours.code == EXPECTED[name], f"mlnb build of {name}:\n{ours.log[-3000:]}"
    if EXPECTED[name] == 0:
        assert _products(ours.root) == _products(stock.root)
    assert "Traceback" not in ours.log


def test_missing_product_is_reported_as_ploomber_says(builds: dict[tuple[str, str], Built]) -> None:
    said = "the task ran successfully but the following products are missing"
    assert said in builds[("ploomber", "missing_product")].log
    ours = builds[("mlnb", "missing_product")].log
    assert f"FAILED task load: TaskBuildError: {said}: out/data.csv" in ours
    assert "DeadKernelError" not in ours
    # mlnb moves a failed task's outputs aside (products/_failed/<task>/); Ploomber leaves them in place
    root = builds[("mlnb", "missing_product")].root
    assert _outputs(root / "products/_failed/load/load.ipynb") == _outputs(
        builds[("ploomber", "missing_product")].root / "out/load.ipynb")


def test_early_stop_is_graceful(builds: dict[tuple[str, str], Built]) -> None:
    ours = builds[("mlnb", "early_stop_task")]
    assert "build stopped early by task load (DAGBuildEarlyStop)" in ours.log
    assert not (ours.root / "products" / "_failed").exists()
    assert not (ours.root / "out" / "more.ipynb").exists()


def test_undeclared_param_warns_in_one_line(builds: dict[tuple[str, str], Built]) -> None:
    assert ("mlnb: warning: pipeline.yaml: tasks[load].params.extra: not declared in the parameters cell of "
            "load.ipynb") in builds[("mlnb", "params_cell")].log


def test_grid_tasks_are_named_as_ploomber_names_them(builds: dict[tuple[str, str], Built]) -> None:
    log = builds[("mlnb", "grid")].log
    assert all(f"fit-{n}-{k}  executed" in log for n in (1, 2) for k in "ab")


def test_scripts_render_html_with_their_output(builds: dict[tuple[str, str], Built]) -> None:
    assert any("total 14" in text for text in _html_text(builds[("mlnb", "scripts")].root / "out" / "report.html"))


def test_sql_tasks_dump_as_ploomber_dumps(builds: dict[tuple[str, str], Built]) -> None:
    root = builds[("mlnb", "sql")].root
    assert (root / "out" / "all.csv").read_text().splitlines()[1:] == ['"1","a"', '"2","b"', '"3","c"', '"4","d"']
    assert sorted(p.name for p in (root / "out" / "odd").iterdir() if not p.name.startswith(".")) == ["0.csv", "1.csv"]


def test_entry_points_build_their_own_spec(builds: dict[tuple[str, str], Built]) -> None:
    assert json.loads((builds[("mlnb", "entry_point")].root / "out" / "serve-total.json").read_text()) == {"total": 10}
    assert (builds[("mlnb", "package_layout")].root / "out" / "total.json").exists()
    assert json.loads((builds[("mlnb", "factory_entry")].root / "out" / "total.json").read_text()) == {"total": 15}


def test_file_client_uploads_as_ploomber_uploads(builds: dict[tuple[str, str], Built]) -> None:
    root = builds[("mlnb", "file_client")].root
    for name in ("data.json", "report.ipynb", "summary.txt", ".summary.txt.metadata"):
        assert (root / "remote" / "out" / name).is_file(), name
    assert (root / "remote" / "out" / "summary.txt").read_text() == "3 rows, total 5\n"


def test_serializers_write_by_extension(builds: dict[tuple[str, str], Built]) -> None:
    out = builds[("mlnb", "serializers")].root / "out"
    assert (out / "note.txt").read_text() == "4 rows\n"
    assert (out / "shout.txt").read_text() == "TOTAL IS 14\n"  # the task-level serializer
    assert json.loads((out / "report.json").read_text())["shout"] == "TOTAL IS 14"


def test_hooks_run_as_ploomber_runs_them(builds: dict[tuple[str, str], Built]) -> None:
    def traces(tool: str, name: str) -> dict[str, object]:
        folder = builds[(tool, name)].root / "out" / "hooks"
        return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}

    ours = traces("mlnb", "hooks")
    assert set(ours) == {"dag-render.json", "dag-finish.json", "render-load.json", "render-total.json",
                         "finish-load.json", "finish-total.json"}
    failed = traces("mlnb", "hooks_failure")  # a failed build: products are not compared, the hooks' traces are
    assert failed == traces("ploomber", "hooks_failure")
    assert {"dag-failure.json", "failure-total.json"} <= set(failed) and "dag-finish.json" not in failed
    assert "FAILED task total: ValueError: no total of" in builds[("mlnb", "hooks_failure")].log
    rebuilt = traces("mlnb", "hooks_rebuilt")  # nothing re-ran, the render and DAG hooks did
    assert set(rebuilt) == {"dag-render.json", "dag-finish.json", "render-load.json", "render-total.json"}
    assert rebuilt["dag-finish.json"]["ran"] == ["load", "total"] and rebuilt == traces("ploomber", "hooks_rebuilt")


def test_failed_script_and_function_tasks_are_reported_as_failed(builds: dict[tuple[str, str], Built]) -> None:
    ours = builds[("mlnb", "script_fails")]
    assert "FAILED task check: cell 3 ('positive(text)'): ValueError: negative values: [-1]" in ours.log
    assert ["ValueError: negative values: [-1]"] in _outputs(ours.root / "products/_failed/check/check.ipynb")
    assert "FAILED task divide: ZeroDivisionError: division by zero" in builds[("mlnb", "function_fails")].log


def test_env_options_override_env_yaml(builds: dict[tuple[str, str], Built]) -> None:
    assert (builds[("mlnb", "env_flags")].root / "out/fr/greeting.txt").read_text() == "salut salut"
