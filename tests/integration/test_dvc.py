"""DVC on a small real project: real git, real DVC, a local-directory remote, real kernels."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import MLNB, REPO, make_tiny_project, run_mlnb

pytestmark = pytest.mark.integration
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
       "PYTHONPATH": str(REPO)}


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=600)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout


def ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def one_line_error(res: subprocess.CompletedProcess, code: int = 1) -> str:
    assert res.returncode == code, res.stdout + res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("mlnb: error:")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def lock_md5(root: Path, path: str) -> str:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return next(o["md5"] for st in lock["stages"].values() for o in st["outs"] if o["path"] == path)


def statuses(table: str) -> dict[str, str]:
    """{task: status} from the task table `mlnb build` prints."""
    return {ln.split()[0]: ln.split()[1] for ln in table.splitlines() if ln.startswith(("first ", "second "))}


def obj(base: Path, md5: str) -> Path:
    return base / "files" / "md5" / md5[:2] / md5[2:]


def flip(path: Path) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def tiny_dvc_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny project as a DVC project (dvc.yaml synced), built and committed: made once per module."""
    root = make_tiny_project(tmp_path_factory.mktemp("template"))
    (root / ".gitignore").write_text("/products/\n/mlflow.db\n/mlartifacts/\n")
    assert "not a DVC repository" in one_line_error(run_mlnb(root, "dvc", "sync"), code=2)
    ok(run_mlnb(root, "dvc", "init"))
    assert "analytics = false" in (root / ".dvc/config").read_text()
    assert {"products/_failed/", ".mlnb/"} <= set((root / ".dvcignore").read_text().splitlines())
    assert (root / "env.yaml").is_symlink() and (root / "params.yaml").is_file()
    res = ok(run_mlnb(root, "build"))
    assert "recorded in DVC (dvc.lock): first, second" in res.stdout
    git(root, "add", "-A")
    git(root, "commit", "-qm", "dvc + first build")
    return root


@pytest.fixture
def tiny_dvc(tiny_dvc_template: Path, tmp_path: Path) -> Path:
    """A private copy of the built template, with its own local remote at ``tmp_path/remote``."""
    root = tmp_path / "tiny"
    shutil.copytree(tiny_dvc_template, root, symlinks=True, ignore=shutil.ignore_patterns("tmp"))
    ok(run_mlnb(root, "remote", "set", str(tmp_path / "remote")))
    return root


def test_repro_and_exp_run_use_the_generated_stages_and_ploomber_agrees(tiny_dvc: Path):
    root = tiny_dvc
    assert "didn't change" in ok(dvc(root, "repro")).stdout  # recorded by mlnb build: nothing to reproduce
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("value: 1", "value: 3"))
    res = ok(dvc(root, "repro"))
    assert "Running stage 'first'" in res.stdout and "Running stage 'second'" in res.stdout
    assert (root / "products/second/data.txt").read_text() == "6"
    assert "Nothing to do" in ok(run_mlnb(root, "build")).stdout  # Ploomber's metadata travelled with the outs
    assert "up to date" in ok(dvc(root, "status")).stdout

    git(root, "add", "-A")
    git(root, "commit", "-qm", "value 3")
    res = ok(dvc(root, "exp", "run", "-S", "first.value=5"))
    assert (root / "products/second/data.txt").read_text() == "10"
    assert (root / "env.yaml").is_symlink() and "value: 5" in (root / "env.yaml").read_text()
    assert "Nothing to do" in ok(run_mlnb(root, "build")).stdout
    diff = ok(dvc(root, "params", "diff")).stdout
    assert "first.value" in diff and "3" in diff and "5" in diff, diff


def test_build_with_overrides_is_not_recorded_and_leaves_dvc_yaml_alone(tiny_dvc: Path):
    lock, stages = (tiny_dvc / "dvc.lock").read_text(), (tiny_dvc / "dvc.yaml").read_text()
    res = ok(run_mlnb(tiny_dvc, "build", "-p", "first.value=7", "-p", "second.mode=ok"))
    assert "not recorded in DVC" in res.stdout
    assert (tiny_dvc / "products/second/data.txt").read_text() == "14"
    assert (tiny_dvc / "dvc.lock").read_text() == lock
    assert (tiny_dvc / "dvc.yaml").read_text() == stages  # dvc.yaml describes params.yaml, not the override
    assert "first" in ok(dvc(tiny_dvc, "status")).stdout  # DVC sees the workspace differs from the record
    assert "Nothing to do" not in ok(run_mlnb(tiny_dvc, "build")).stdout  # and so does mlnb: back to value 1
    assert (tiny_dvc / "products/second/data.txt").read_text() == "2"
    assert "up to date" in ok(dvc(tiny_dvc, "status")).stdout


def test_an_edited_imported_module_reruns_its_task(tiny_dvc: Path):
    """Ploomber watches only the notebook; mlnb (like DVC) also watches the project modules it imports."""
    root = tiny_dvc
    (root / "tinylib").mkdir()
    (root / "tinylib/__init__.py").write_text("FACTOR = 2\n")
    nb_path = root / "notebooks/second.ipynb"
    nb = json.loads(nb_path.read_text())
    nb["cells"][-1]["source"] = ("from tinylib import FACTOR\nPath(product['data']).write_text(str(x * FACTOR))\n"
                                 "print('second wrote', x * FACTOR)")
    nb_path.write_text(json.dumps(nb))
    res = ok(run_mlnb(root, "build"))  # an edited notebook re-runs its task and its downstream only
    assert statuses(res.stdout) == {"first": "skipped", "second": "executed"}, res.stdout
    stage = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["second"]
    assert "tinylib/__init__.py" in stage["deps"]
    assert (root / "products/second/data.txt").read_text() == "2"
    assert "Nothing to do" in ok(run_mlnb(root, "build")).stdout

    (root / "tinylib/__init__.py").write_text("FACTOR = 3\n")
    rows = ok(run_mlnb(root, "status")).stdout
    assert "imported module changed: tinylib/__init__.py" in rows, rows
    assert [ln.split()[1] for ln in rows.splitlines() if ln.startswith(("first ", "second "))] == \
        ["up", "outdated"], rows
    explained = ok(run_mlnb(root, "status", "--explain")).stdout  # --explain agrees with status
    assert "first: up to date" in explained and "second: outdated\n" in explained, explained
    assert "imported module changed: tinylib/__init__.py" in explained, explained
    refused = run_mlnb(root, "accept", "second")  # a module change needs a run
    assert refused.returncode == 2 and "imported module changed" in refused.stderr, refused.stderr
    res = ok(run_mlnb(root, "build"))
    assert statuses(res.stdout) == {"first": "skipped", "second": "executed"}, res.stdout
    assert (root / "products/second/data.txt").read_text() == "3"
    assert "up to date" in ok(dvc(root, "status")).stdout  # dvc.lock recorded the new module hash
    assert "Nothing to do" in ok(run_mlnb(root, "build")).stdout


def test_dvc_commit_records_only_up_to_date_tasks(tiny_dvc: Path):
    root = tiny_dvc
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("value: 1", "value: 4"))  # first (and second) now outdated
    lock = (root / "dvc.lock").read_text()
    res = ok(run_mlnb(root, "dvc", "commit"))
    assert "not recorded (outdated: run `mlnb build`): first, second" in res.stdout
    assert (root / "dvc.lock").read_text() == lock  # old outputs are not recorded under the new params


def test_missing_or_unreachable_remote_is_one_line_and_deletes_nothing(tiny_dvc: Path, tmp_path: Path):
    root = tiny_dvc
    cache_files = sorted(p for p in (root / ".dvc/cache").rglob("*") if p.is_file())
    products = {p: p.read_bytes() for p in (root / "products").rglob("*") if p.is_file()}
    shutil.rmtree(tmp_path / "remote", ignore_errors=True)
    for command in ("push", "pull"):
        msg = one_line_error(run_mlnb(root, command))
        assert "remote 'mlnb'" in msg and "does not exist" in msg, msg
    ok(run_mlnb(root, "remote", "set", "http://127.0.0.1:9/remote"))  # nothing listens on the discard port
    assert "127.0.0.1" in one_line_error(run_mlnb(root, "push"))
    assert sorted(p for p in (root / ".dvc/cache").rglob("*") if p.is_file()) == cache_files
    assert {p: p.read_bytes() for p in (root / "products").rglob("*") if p.is_file()} == products


def test_corrupted_remote_object_is_named_on_pull(tiny_dvc: Path, tmp_path: Path):
    root, remote = tiny_dvc, tmp_path / "remote"
    ok(run_mlnb(root, "push"))
    flip(obj(remote, lock_md5(root, "products/second/data.txt")))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(root), str(clone))
    msg = one_line_error(run_mlnb(clone, "pull", env={"MLNB_DVC_REMOTE": str(remote)}))
    assert "products/second/data.txt" in msg and "corrupted in remote 'mlnb-env'" in msg, msg
    assert not (clone / "products").exists()  # nothing half checked out


def test_corrupted_cache_object_is_replaced_from_the_remote(tiny_dvc: Path):
    root = tiny_dvc
    ok(run_mlnb(root, "push"))
    target = root / "products/first/data.txt"
    flip(obj(root / ".dvc/cache", lock_md5(root, "products/first/data.txt")))
    target.unlink()
    res = ok(run_mlnb(root, "pull"))
    assert "replaced 1 corrupted object" in res.stderr
    assert target.read_text() == "1"


def test_sync_check_fails_with_a_diff_after_a_hand_edit(tiny_dvc: Path):
    root = tiny_dvc
    path = root / "dvc.yaml"
    path.write_text(path.read_text().replace("cmd: mlnb run second", "cmd: python hand_edit.py")
                    + "artifacts:\n  model:\n    path: products/second/data.txt\n")
    res = run_mlnb(root, "dvc", "sync", "--check")
    assert res.returncode == 1
    assert "-    cmd: python hand_edit.py" in res.stdout and "+    cmd: mlnb run second" in res.stdout
    assert "out of date with pipeline.yaml" in res.stderr
    assert "hand_edit" in path.read_text()  # --check writes nothing
    ok(run_mlnb(root, "dvc", "sync"))
    assert ok(run_mlnb(root, "dvc", "sync", "--check")).stdout.startswith("dvc.yaml is up to date")
    assert "hand_edit" not in path.read_text() and "artifacts:" in path.read_text()  # user sections kept
    assert "mlnb run second" in yaml.safe_load(path.read_text())["stages"]["second"]["cmd"]


def test_credentials_never_land_in_a_tracked_file(tiny_dvc: Path):
    root = tiny_dvc
    msg = one_line_error(run_mlnb(root, "remote", "set", "https://user:hunter2@example.com/store"), code=2)
    assert "hunter2" not in msg and "password" in msg
    assert git(root, "status", "--porcelain") == ""  # `remote set` wrote only .dvc/config.local
    config = root / ".dvc/config"
    config.write_text(config.read_text() + "['remote \"s3\"']\n    url = s3://bucket/x\n"
                      "    secret_access_key = abcdefgh12345678\n")
    msg = one_line_error(run_mlnb(root, "push"), code=2)
    assert "remote \"s3\".secret_access_key" in msg and "abcdefgh" not in msg


def test_interrupted_push_completes_on_a_second_push(tiny_dvc: Path, tmp_path: Path):
    root, remote = tiny_dvc, tmp_path / "remote"
    big = root / "data" / "big"
    big.mkdir(parents=True)
    rng = __import__("random").Random(0)
    for i in range(1500):
        (big / f"part-{i:04d}.bin").write_bytes(rng.randbytes(96 * 1024))
    ok(dvc(root, "add", "-q", "data/big"))
    total = 1500 + 1 + 8  # file objects + the .dir object + the tiny pipeline's outputs
    proc = subprocess.Popen([*MLNB, "push"], cwd=root, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    count = 0
    while time.monotonic() < deadline and proc.poll() is None:
        count = sum(1 for p in remote.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
        if count >= 50:
            break
        time.sleep(0.01)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # mlnb and its dvc child, mid-transfer
    proc.wait()
    pushed = [p for p in remote.rglob("*") if p.is_file()]
    assert 0 < len(pushed) < total, f"the push was not interrupted mid-way ({len(pushed)} of {total} objects)"
    # whatever the kill left, make the damage certain: some finished objects gone, a partial upload left over
    for path in [p for p in pushed if re.fullmatch(r"[0-9a-f]{30}(\.dir)?", p.name)][:5]:
        path.unlink()
    partial = remote / "files/md5/00/.partial-upload.tmp"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half an object")
    res = ok(run_mlnb(root, "push"))
    match = re.search(r"(\d+) files? pushed", res.stdout)
    assert match and int(match.group(1)) >= 5, res.stdout
    clone = tmp_path / "clone"
    git(root, "add", "-A")
    git(root, "commit", "-qm", "big data")
    git(tmp_path, "clone", "-q", str(root), str(clone))
    ok(run_mlnb(clone, "pull", env={"MLNB_DVC_REMOTE": str(remote)}))  # every object verified by hash
    assert sorted(p.name for p in (clone / "data/big").iterdir()) == sorted(p.name for p in big.iterdir())
    assert (clone / "data/big/part-1499.bin").read_bytes() == (big / "part-1499.bin").read_bytes()
    assert json.loads((clone / "products/second/second.ipynb").read_text())["cells"]
