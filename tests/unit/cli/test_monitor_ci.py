"""scripts/monitor-ci.sh, the scheduled monitoring job of the CI templates, run for real with bash.

Each case runs the script in a git project whose `origin` is a local bare repository (its post-receive
hook records every pushed ref and push option), with fake `mlnb`, `dvc` and `gh` first on PATH: they
record their arguments and do what the case says (`mlnb monitor` exits 0, 1 or 2, a build fails its gate,
...). What is asserted is what the job does: nothing after "no drift", a failure on bad input, and on drift
the latest data, a build, a push and a new branch with its pull/merge request, never a push to main.
One case uses the real `dvc` (get-url of a log and a data directory, `dvc add`) instead of the fake.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "scripts/monitor-ci.sh"
TEMPLATE_SCRIPT = REPO / "mlnb/templates/project/scripts/monitor-ci.sh"

FAKE_MLNB = """
import json, os, pathlib, sys

calls = pathlib.Path(os.environ["FAKE_CALLS"])
with calls.open("a") as fh:
    fh.write(json.dumps(["mlnb", *sys.argv[1:]]) + "\\n")
cmd, args = sys.argv[1], sys.argv[2:]
if cmd == "monitor":
    code = int(os.environ.get("FAKE_MONITOR_EXIT", "0"))
    pathlib.Path(args[args.index("--html") + 1]).write_text("<html>report</html>")
    if code == 2:
        print("mlnb: error: predictions.jsonl: no rows since 24h", file=sys.stderr)
        sys.exit(2)
    if os.environ.get("FAKE_MONITOR_JSON", "1") == "1":
        print(json.dumps({"drift": code == 1, "drifted_features": ["feature_a", "feature_c"] if code else [],
                          "prediction": {"drifted": False}, "window": {"model_version": "3", "rows": 1200}}))
    sys.exit(code)
if cmd == "build":
    n = sum(1 for line in calls.read_text().splitlines() if json.loads(line)[:2] == ["mlnb", "build"])
    codes = os.environ.get("FAKE_BUILD_EXITS", "0,0").split(",")
    verdict = os.environ.get("FAKE_VERDICT", "promotable")
    pathlib.Path("products/evaluate").mkdir(parents=True, exist_ok=True)
    pathlib.Path("products/last_build.json").write_text("{}")
    pathlib.Path("products/evaluate/gate.json").write_text(json.dumps(
        {"verdict": verdict, "reason": "f1 0.97 vs champion 0.93"}))
    if "--no-dvc" not in args and pathlib.Path("dvc.lock").exists():
        with open("dvc.lock", "a") as fh:
            fh.write(f"# build {n}\\n")
    sys.exit(int(codes[min(n, len(codes)) - 1]))
if cmd == "verdict":
    print(os.environ.get("FAKE_VERDICT", "promotable"))
if cmd == "report":
    pathlib.Path("reports").mkdir(exist_ok=True)
    pathlib.Path("reports/build.html").write_text("<html>build</html>")
"""

FAKE_DVC = """
import hashlib, json, os, pathlib, shutil, sys

with open(os.environ["FAKE_CALLS"], "a") as fh:
    fh.write(json.dumps(["dvc", *sys.argv[1:]]) + "\\n")
cmd = sys.argv[1]
args = [a for a in sys.argv[2:] if not a.startswith("-")]
if cmd == "get-url":
    src, out = pathlib.Path(args[0]), pathlib.Path(args[1])
    if not src.exists():
        sys.exit(f"ERROR: failed to get '{src}'")
    if out.exists():
        sys.exit(f"ERROR: {out} already exists")
    (shutil.copytree if src.is_dir() else shutil.copy2)(src, out)
elif cmd == "add":
    path = pathlib.Path(args[0])
    digest = hashlib.md5()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f.relative_to(path).as_posix().encode() + f.read_bytes())
    pathlib.Path(f"{path}.dvc").write_text(f"outs:\\n- md5: {digest.hexdigest()}.dir\\n  path: {path.name}\\n")
    ignore = path.parent / ".gitignore"
    if f"/{path.name}" not in (ignore.read_text() if ignore.exists() else ""):
        with ignore.open("a") as fh:
            fh.write(f"/{path.name}\\n")
else:
    sys.exit(f"fake dvc: unexpected command {cmd}")
"""

FAKE_GH = """
import json, os, sys

with open(os.environ["FAKE_CALLS"], "a") as fh:
    fh.write(json.dumps(["gh", *sys.argv[1:]]) + "\\n")
print("https://github.com/acme/churn/pull/7")
"""

POST_RECEIVE = """#!/bin/sh
{ while read -r old new ref; do echo "ref $ref"; done
  i=0; while [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ]; do eval "echo \\"option \\$GIT_PUSH_OPTION_$i\\""; i=$((i + 1)); done
} >> "$(dirname "$0")/../pushes.log"
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


class Case:
    """A project with an origin, fake tools and the sources the CI variables point at."""

    def __init__(self, tmp: Path, *, dvc_tracked: bool = True, real_dvc: bool = False) -> None:
        self.tmp = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        fakes = {"mlnb": FAKE_MLNB, "gh": FAKE_GH} | ({} if real_dvc else {"dvc": FAKE_DVC})
        for name, code in fakes.items():
            (self.bin / name).write_text(f"#!{sys.executable}\n{code}")
            (self.bin / name).chmod(0o755)
        (self.bin / "python3").symlink_to(sys.executable)
        self.calls_file = tmp / "calls.jsonl"
        self.calls_file.touch()
        self.path = f"{self.bin}:{Path(sys.executable).parent}:{os.environ['PATH']}"  # venv's dvc for real_dvc

        self.src = tmp / "src"
        (self.src / "raw_same").mkdir(parents=True)
        (self.src / "raw_same/train.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
        shutil.copytree(self.src / "raw_same", self.src / "raw_new")
        (self.src / "raw_new/train.csv").write_text("a,b,label\n1,2,0\n3,4,1\n5,9,1\n")
        (self.src / "predictions.jsonl").write_text('{"time": "2026-01-01T00:00:00.000Z", "model_version": "3"}\n')

        self.root = tmp / "project"
        (self.root / "data").mkdir(parents=True)
        shutil.copytree(self.src / "raw_same", self.root / "data/raw")
        (self.root / ".gitignore").write_text("/products/\n/reports/\n")
        (self.root / "params.yaml").write_text("data:\n  source: data/raw/train.csv\n")
        git(self.root, "init", "-q")
        git(self.root, "symbolic-ref", "HEAD", "refs/heads/main")
        if dvc_tracked:
            if real_dvc:
                subprocess.run([str(Path(sys.executable).parent / "dvc"), "init", "-q"], cwd=self.root, check=True)
                subprocess.run([str(Path(sys.executable).parent / "dvc"), "config", "core.analytics", "false"],
                               cwd=self.root, check=True)
            self.run_tool("dvc", "add", "data/raw")
            (self.root / "dvc.lock").write_text("schema: '2.0'\n")
        git(self.root, "add", "-A")
        git(self.root, "-c", "user.name=dev", "-c", "user.email=dev@example.com", "commit", "-qm", "init")

        self.origin = tmp / "origin.git"
        git(tmp, "init", "-q", "--bare", str(self.origin))
        git(self.origin, "config", "receive.advertisePushOptions", "true")
        (self.origin / "hooks/post-receive").write_text(POST_RECEIVE)
        (self.origin / "hooks/post-receive").chmod(0o755)
        git(self.root, "remote", "add", "origin", str(self.origin))
        git(self.root, "push", "-q", "origin", "main")
        (self.origin / "pushes.log").write_text("")
        self.main_before = git(self.origin, "rev-parse", "refs/heads/main")

    def run_tool(self, *args: str) -> None:
        subprocess.run(list(args), cwd=self.root, check=True, capture_output=True,
                       env={"PATH": self.path, "HOME": str(self.tmp), "FAKE_CALLS": str(self.tmp / "setup.jsonl")})

    def run(self, **env: str) -> subprocess.CompletedProcess:
        base = {"PATH": self.path, "HOME": str(self.tmp), "GIT_CONFIG_NOSYSTEM": "1", "LANG": "C.UTF-8",
                "FAKE_CALLS": str(self.calls_file), "DVC_NO_ANALYTICS": "1",
                "MLNB_PREDICTION_LOG_URL": str(self.src / "predictions.jsonl")}
        full = {k: v for k, v in {**base, **env}.items() if v is not None}
        return subprocess.run(["bash", str(SCRIPT)], cwd=self.root, env=full, capture_output=True, text=True,
                              timeout=120)

    @property
    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.calls_file.read_text().splitlines()]

    def mlnb(self) -> list[str]:
        """The mlnb subcommands run, in order."""
        return [c[1] for c in self.calls if c[0] == "mlnb"]

    def branches(self) -> list[str]:
        refs = git(self.origin, "for-each-ref", "--format=%(refname)", "refs/heads/")
        return sorted(r.removeprefix("refs/heads/") for r in refs.splitlines())

    def pushed(self) -> list[str]:
        return (self.origin / "pushes.log").read_text().splitlines()

    def changed(self, branch: str) -> set[str]:
        return set(git(self.origin, "diff", "--name-only", "main", branch).splitlines())


def gh_env(**extra: str) -> dict[str, str]:
    return {"GITHUB_ACTIONS": "true", "GITHUB_REF_NAME": "main", "GITHUB_RUN_ID": "42",
            "GITHUB_REPOSITORY": "acme/churn", "GITHUB_SERVER_URL": "https://github.com", **extra}


def assert_nothing_proposed(case: Case) -> None:
    assert case.branches() == ["main"] and case.pushed() == []
    assert git(case.origin, "rev-parse", "refs/heads/main") == case.main_before
    assert not [c for c in case.calls if c[0] == "gh"]


# --- the scripts the templates run ---------------------------------------------------------------------

def test_the_project_template_ships_the_same_script() -> None:
    assert TEMPLATE_SCRIPT.read_text(encoding="utf-8") == SCRIPT.read_text(encoding="utf-8")
    assert os.access(SCRIPT, os.X_OK), "scripts/monitor-ci.sh is executable in this repository"
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


# --- exit 0, 2, and no configuration: nothing happens (or the job fails) --------------------------------

def test_without_a_log_url_the_job_ends_green_and_does_nothing(tmp_path: Path) -> None:
    case = Case(tmp_path)
    ran = case.run(MLNB_PREDICTION_LOG_URL=None)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "MLNB_PREDICTION_LOG_URL is not set: nothing to monitor" in ran.stdout
    assert case.calls == []
    assert_nothing_proposed(case)


def test_no_drift_ends_green_after_the_monitor_with_its_reports(tmp_path: Path) -> None:
    case = Case(tmp_path)
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "raw_new"), FAKE_MONITOR_EXIT="0", **gh_env())
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert case.mlnb() == ["build", "monitor"]  # the reference, then the monitor: no refresh, no rebuild
    monitor = next(c for c in case.calls if c[:2] == ["mlnb", "monitor"])
    assert monitor[2:] == ["--log", "predictions.jsonl", "--since", "24h", "--json", "--html", "reports/monitor.html"]
    get_urls = [c for c in case.calls if c[:2] == ["dvc", "get-url"]]
    assert get_urls[0][2:] == [str(case.src / "predictions.jsonl"), "predictions.jsonl"]
    assert len(get_urls) == 2 and get_urls[1][-2:] == [str(case.src / "predictions.jsonl.1"), "predictions.jsonl.1"]
    assert (case.root / "predictions.jsonl").read_text() == (case.src / "predictions.jsonl").read_text()
    assert json.loads((case.root / "reports/monitor.json").read_text())["drift"] is False
    assert (case.root / "reports/monitor.html").is_file()
    assert "no drift since 24h" in ran.stdout
    assert (case.root / "data/raw/train.csv").read_text() == (case.src / "raw_same/train.csv").read_text()
    assert_nothing_proposed(case)


def test_the_window_comes_from_mlnb_monitor_since(tmp_path: Path) -> None:
    case = Case(tmp_path)
    assert case.run(MLNB_MONITOR_SINCE="7d").returncode == 0
    monitor = next(c for c in case.calls if c[:2] == ["mlnb", "monitor"])
    assert monitor[monitor.index("--since") + 1] == "7d"


def test_bad_input_fails_the_job_with_exit_2_and_retrains_nothing(tmp_path: Path) -> None:
    case = Case(tmp_path)
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "raw_new"), FAKE_MONITOR_EXIT="2", **gh_env())
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert "no rows since 24h" in ran.stderr and "bad input" in ran.stdout
    assert case.mlnb() == ["build", "monitor"]
    assert not [c for c in case.calls if c[:2] == ["dvc", "add"]]
    assert_nothing_proposed(case)


def test_a_monitor_that_crashes_with_exit_1_is_not_taken_for_drift(tmp_path: Path) -> None:
    case = Case(tmp_path)
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "raw_new"), FAKE_MONITOR_EXIT="1", FAKE_MONITOR_JSON="0",
                   **gh_env())
    assert ran.returncode == 1 and "without a drift result" in ran.stdout, ran.stdout + ran.stderr
    assert case.mlnb() == ["build", "monitor"]
    assert_nothing_proposed(case)


def test_a_missing_log_fails_before_anything_is_built(tmp_path: Path) -> None:
    case = Case(tmp_path)
    ran = case.run(MLNB_PREDICTION_LOG_URL=str(tmp_path / "nowhere.jsonl"))
    assert ran.returncode != 0 and case.mlnb() == []
    assert_nothing_proposed(case)


# --- exit 1: drift --------------------------------------------------------------------------------------

def test_drift_on_github_retrains_on_the_latest_data_and_opens_a_pull_request(tmp_path: Path) -> None:
    case = Case(tmp_path)
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "raw_new"), FAKE_MONITOR_EXIT="1", **gh_env())
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert case.mlnb() == ["build", "monitor", "build", "verdict", "report", "push"]
    builds = [c for c in case.calls if c[:2] == ["mlnb", "build"]]
    assert builds == [["mlnb", "build"], ["mlnb", "build"]]  # dvc.lock is committed: builds record in it
    assert [c[:2] for c in case.calls] == [
        ["dvc", "get-url"], ["dvc", "get-url"], ["mlnb", "build"], ["mlnb", "monitor"],  # log (and .1), reference
        ["dvc", "get-url"], ["dvc", "add"], ["mlnb", "build"], ["mlnb", "verdict"], ["mlnb", "report"],
        ["mlnb", "push"], ["gh", "pr"]]
    assert ["dvc", "add", "data/raw"] in case.calls
    assert (case.root / "data/raw/train.csv").read_text() == (case.src / "raw_new/train.csv").read_text()

    [branch] = [b for b in case.branches() if b != "main"]
    assert branch.startswith("mlnb/retrain-")
    assert git(case.origin, "rev-parse", "refs/heads/main") == case.main_before, "main is never pushed"
    assert case.changed(branch) == {"data/raw.dvc", "dvc.lock"}
    assert git(case.origin, "log", "-1", "--format=%an <%ae>", branch) == \
        "github-actions[bot] <41898282+github-actions[bot]@users.noreply.github.com>"
    subject = git(case.origin, "log", "-1", "--format=%s", branch)
    assert subject == "Retrain after drift: model version 3, gate verdict promotable"

    [pr] = [c for c in case.calls if c[0] == "gh"]
    assert pr[:3] == ["gh", "pr", "create"]
    assert pr[pr.index("--base") + 1] == "main" and pr[pr.index("--head") + 1] == branch
    assert pr[pr.index("--title") + 1] == subject
    body = git(case.origin, "log", "-1", "--format=%b", branch)
    for said in ("feature_a, feature_c", "1200 rows since 24h", "gate verdict promotable (f1 0.97 vs champion 0.93)",
                 "Nothing was promoted", "https://github.com/acme/churn/actions/runs/42", "mlnb promote"):
        assert said in " ".join(body.split()), body
    assert str(case.src) not in body, "URLs (possibly presigned) are never written"
    assert "proposed mlnb/retrain-" in ran.stdout


def test_drift_on_gitlab_pushes_a_branch_that_opens_a_merge_request(tmp_path: Path) -> None:
    case = Case(tmp_path)
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "raw_new"), FAKE_MONITOR_EXIT="1", GITLAB_CI="true",
                   CI_COMMIT_BRANCH="main", CI_JOB_URL="https://gitlab.example.com/acme/churn/-/jobs/9",
                   GITLAB_USER_NAME="Ana", GITLAB_USER_EMAIL="ana@example.com")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [branch] = [b for b in case.branches() if b != "main"]
    assert git(case.origin, "rev-parse", "refs/heads/main") == case.main_before
    pushed = case.pushed()
    assert pushed[0] == f"ref refs/heads/{branch}" and len([p for p in pushed if p.startswith("ref ")]) == 1
    options = [p.removeprefix("option ") for p in pushed if p.startswith("option ")]
    assert {"merge_request.create", "merge_request.target=main", "merge_request.remove_source_branch"} <= set(options)
    title = next(o for o in options if o.startswith("merge_request.title="))
    assert title.endswith("gate verdict promotable")
    description = next(o for o in options if o.startswith("merge_request.description="))
    assert "https://gitlab.example.com/acme/churn/-/jobs/9" in description
    assert git(case.origin, "log", "-1", "--format=%an <%ae>", branch) == "Ana <ana@example.com>"
    assert not [c for c in case.calls if c[0] == "gh"]


def test_on_gitlab_a_push_token_is_sent_as_a_header_and_never_stored(tmp_path: Path) -> None:
    case = Case(tmp_path)
    token = "glpat-" + "x" * 20  # a made-up value
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "raw_new"), FAKE_MONITOR_EXIT="1", GITLAB_CI="true",
                   CI_COMMIT_BRANCH="main", MLNB_PUSH_TOKEN=token, CI_SERVER_URL=f"file://{tmp_path}",
                   CI_PROJECT_PATH="origin")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert len(case.branches()) == 2 and "option merge_request.create" in case.pushed()
    assert token not in ran.stdout + ran.stderr
    assert token not in (case.root / ".git/config").read_text()


def test_drift_without_a_data_url_fails_and_builds_nothing_new(tmp_path: Path) -> None:
    case = Case(tmp_path)
    ran = case.run(FAKE_MONITOR_EXIT="1", **gh_env())
    assert ran.returncode == 1 and "no MLNB_RAW_DATA_URL" in ran.stdout, ran.stdout + ran.stderr
    assert "DRIFT: model version 3, 1200 rows since 24h; features: feature_a, feature_c" in ran.stdout
    assert case.mlnb() == ["build", "monitor"]
    assert_nothing_proposed(case)


def test_drift_with_the_same_data_as_before_fails_and_proposes_nothing(tmp_path: Path) -> None:
    case = Case(tmp_path)
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "raw_same"), FAKE_MONITOR_EXIT="1", **gh_env())
    assert ran.returncode == 1 and "nothing new to retrain on" in ran.stdout, ran.stdout + ran.stderr
    assert case.mlnb() == ["build", "monitor"]
    assert_nothing_proposed(case)


def test_a_candidate_that_fails_the_gate_is_still_proposed_and_the_job_fails(tmp_path: Path) -> None:
    case = Case(tmp_path)
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "raw_new"), FAKE_MONITOR_EXIT="1", FAKE_BUILD_EXITS="0,1",
                   FAKE_VERDICT="failed", **gh_env())
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert case.mlnb() == ["build", "monitor", "build", "verdict", "report", "push"]
    [pr] = [c for c in case.calls if c[0] == "gh"]
    assert pr[pr.index("--title") + 1].endswith("gate verdict failed")
    assert git(case.origin, "rev-parse", "refs/heads/main") == case.main_before


def test_a_build_with_bad_input_after_the_refresh_proposes_nothing(tmp_path: Path) -> None:
    case = Case(tmp_path)
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "raw_new"), FAKE_MONITOR_EXIT="1", FAKE_BUILD_EXITS="0,2",
                   **gh_env())
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert case.mlnb() == ["build", "monitor", "build"]
    assert_nothing_proposed(case)


def test_one_file_of_new_data_goes_into_data_raw_under_its_name(tmp_path: Path) -> None:
    case = Case(tmp_path)
    (case.src / "train.csv").write_text("a,b,label\n7,7,1\n")
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "train.csv"), FAKE_MONITOR_EXIT="1", **gh_env())
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (case.root / "data/raw/train.csv").read_text() == "a,b,label\n7,7,1\n"


def test_a_project_whose_data_git_tracks_commits_the_data_and_builds_without_dvc(tmp_path: Path) -> None:
    """A new `mlnb init` project: data/raw/*.csv in git, no dvc.lock, builds with --no-dvc, no DVC remote."""
    case = Case(tmp_path, dvc_tracked=False)
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "raw_new"), FAKE_MONITOR_EXIT="1", **gh_env())
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert [c for c in case.calls if c[:2] == ["mlnb", "build"]] == [["mlnb", "build", "--no-dvc"]] * 2
    assert case.mlnb() == ["build", "monitor", "build", "verdict", "report"]  # no DVC remote to push to
    assert not [c for c in case.calls if c[:2] == ["dvc", "add"]]
    [branch] = [b for b in case.branches() if b != "main"]
    assert case.changed(branch) == {"data/raw/train.csv"}


def test_with_the_real_dvc_the_log_and_the_data_are_fetched_and_tracked(tmp_path: Path) -> None:
    case = Case(tmp_path, real_dvc=True)
    before = (case.root / "data/raw.dvc").read_text()
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "raw_new"), FAKE_MONITOR_EXIT="1", **gh_env())
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (case.root / "predictions.jsonl").read_text() == (case.src / "predictions.jsonl").read_text()
    assert not (case.root / "predictions.jsonl.1").exists()  # there is no rotated log beside it
    after = (case.root / "data/raw.dvc").read_text()
    assert after != before and "nfiles: 1" in after
    assert (case.root / "data/raw/train.csv").read_text() == (case.src / "raw_new/train.csv").read_text()
    [branch] = [b for b in case.branches() if b != "main"]
    assert case.changed(branch) == {"data/raw.dvc", "dvc.lock"}
    md5 = hashlib.md5((case.root / "data/raw/train.csv").read_bytes()).hexdigest()
    assert (case.root / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).is_file(), "dvc add cached the new data"


@pytest.mark.parametrize("base", ["", "HEAD"])
def test_without_a_base_branch_nothing_is_pushed(tmp_path: Path, base: str) -> None:
    case = Case(tmp_path)
    git(case.root, "checkout", "-q", "--detach")
    ran = case.run(MLNB_RAW_DATA_URL=str(case.src / "raw_new"), FAKE_MONITOR_EXIT="1", MLNB_BASE_BRANCH=base or None)
    assert ran.returncode == 2 and "no base branch" in ran.stdout, ran.stdout + ran.stderr
    assert case.mlnb() == ["build", "monitor"], "nothing is fetched, built or pushed"
    assert_nothing_proposed(case)
