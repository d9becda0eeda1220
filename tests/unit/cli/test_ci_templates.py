"""The CI/CD templates (.github/workflows/ci.yml and monitor.yml, .gitlab-ci.yml) are valid and run real commands.

Schemas: check-jsonschema's bundled (vendored) schemas, offline. Commands: every `make X` is a
Makefile target and every `mlnb ...` parses with the real click CLI. Stages run in the documented
order, telemetry is off, and no credential is written in either file. The delivery stages (serving
image, `mlnb deploy k8s` + `kubectl apply`) run only on the default branch after a promotable gate, in
these files and in the ones `mlnb init` writes into a project (mlnb/templates/project), which are
checked the same way once rendered. The scheduled monitoring job (GitHub: monitor.yml; GitLab: the only
job of scheduled pipelines, rules evaluated here as GitLab does) runs scripts/monitor-ci.sh, whose
commands are checked too; tests/unit/cli/test_monitor_ci.py runs that script.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from tests.conftest import REPO

GITHUB = REPO / ".github/workflows/ci.yml"
GITLAB = REPO / ".gitlab-ci.yml"
MONITOR = REPO / ".github/workflows/monitor.yml"
MONITOR_SCRIPT = "scripts/monitor-ci.sh"
TELEMETRY_OFF = {"PLOOMBER_STATS_ENABLED": "false", "PLOOMBER_VERSION_CHECK_DISABLED": "true",
                 "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "DVC_NO_ANALYTICS": "1"}
# Tools the templates may call besides make and mlnb (a typo such as `mlbn pull` fails the test).
OTHER_TOOLS = {"apt-get", "bash", "cat", "cd", "docker", "echo", "exit", "export", "git", "kubectl", "ls", "mkdir",
               "pip", "printf", "python", "python3", "test", "[", "true"}
SHELL_KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}"}
SEPARATORS = {"&&", "||", ";", "|", "(", ")", "&", ";;"}
# Stages, in order: (label, tool, first argument).
ORDER = [("install", "make", "setup"), ("pull", "mlnb", "pull"), ("lint", "make", "lint"), ("unit", "make", "unit"),
         ("nbval", "make", "nbval"), ("build", "mlnb", "build"), ("push", "mlnb", "push"),
         ("image", "docker", "build"), ("deploy", "mlnb", "deploy"), ("apply", "kubectl", "apply")]
GITLAB_KEYWORDS = {"default", "include", "stages", "variables", "workflow", "image", "services", "cache",
                   "before_script", "after_script", "spec"}
DEFAULT_BRANCH_RULE = "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"
SCHEDULE = '$CI_PIPELINE_SOURCE == "schedule"'
NOT_SCHEDULED = {"if": SCHEDULE, "when": "never"}  # first rule of every job but `monitor`


# --- helpers ------------------------------------------------------------------------------------------

def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _github_on(workflow: dict) -> dict:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True


def _check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess:
    """check-jsonschema with a bundled schema, in a subprocess that cannot reach the network."""
    assert importlib.util.find_spec("check_jsonschema") is not None, \
        "check-jsonschema is not installed: it is part of the test extras (pip install -e '.[test]')"
    dead = "http://127.0.0.1:9"  # any download attempt fails instead of silently using the network
    env = {**os.environ, "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "http_proxy": dead, "https_proxy": dead,
           "NO_PROXY": "", "no_proxy": ""}
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, env=env, timeout=120)


def _lines(script: object) -> list[str]:
    """Shell lines of a `run:`/`script:` value (a string or a possibly nested list of strings)."""
    if isinstance(script, list):
        return [line for item in script for line in _lines(item)]
    assert isinstance(script, str), f"a script must be text, got {script!r}"
    text = re.sub(r"\\\n\s*", " ", script)  # join continued lines
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def _commands(line: str) -> list[list[str]]:
    """The simple commands of one shell line, as word lists (keywords, assignments, redirections dropped)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, words = [], []
    tokens = list(lexer)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in SEPARATORS:
            commands.append(words)
            words = []
        elif re.fullmatch(r"\d*[<>]+&?", tok):
            i += 1  # a redirection and its target
        elif not words and (tok in SHELL_KEYWORDS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tok)):
            pass  # `if`/`then`/... before a command, or an environment assignment `VAR=value cmd`
        else:
            words.append(tok)
        i += 1
    commands.append(words)
    return [c for c in commands if c]


def github_commands(workflow: dict) -> list[list[str]]:
    """Every command of every `run:`, jobs in dependency (`needs`) order, steps in order."""
    jobs = workflow["jobs"]
    ordered: list[str] = []
    while len(ordered) < len(jobs):
        ready = [name for name, job in jobs.items() if name not in ordered
                 and all(n in ordered for n in ([job["needs"]] if isinstance(job.get("needs"), str)
                                                else job.get("needs", [])))]
        assert ready, f"cycle or unknown job in `needs`: {set(jobs) - set(ordered)}"
        ordered.append(ready[0])
    return [cmd for name in ordered for step in jobs[name].get("steps", []) if "run" in step
            for line in _lines(step["run"]) for cmd in _commands(line)]


def gitlab_jobs(pipeline: dict) -> dict[str, dict]:
    return {name: job for name, job in pipeline.items()
            if name not in GITLAB_KEYWORDS and not str(name).startswith(".") and isinstance(job, dict)}


def gitlab_commands(pipeline: dict) -> list[list[str]]:
    """Every command of every job, jobs in stage order: before_script (the job's or default's),
    script, after_script."""
    stages = pipeline.get("stages", ["build", "test", "deploy"])
    default = pipeline.get("default", {})
    jobs = gitlab_jobs(pipeline)
    for name, job in jobs.items():
        assert job.get("stage", "test") in stages, f"job {name}: stage {job.get('stage')!r} is not in `stages`"
    ordered = sorted(jobs, key=lambda name: stages.index(jobs[name].get("stage", "test")))  # stable: file order
    out = []
    for name in ordered:
        job = jobs[name]
        for key in ("before_script", "script", "after_script"):
            script = job.get(key, default.get(key, pipeline.get(key, []))) if key != "script" else job["script"]
            out += [cmd for line in _lines(script) for cmd in _commands(line)]
    return out


def makefile_targets() -> set[str]:
    text = (REPO / "Makefile").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.M)
            if not m.group(1).startswith(".")}


def check_mlnb(words: list[str]) -> None:
    """`mlnb ARGS` names a real (sub)command, with options it has, and parses with click."""
    from mlnb.cli.main import main

    cmd: click.Command = main
    path = ["mlnb"]
    args = words[1:]
    while args and isinstance(cmd, click.Group) and not args[0].startswith("-"):
        assert args[0] in cmd.commands, f"`{' '.join(words)}`: {' '.join(path)} has no command {args[0]!r} " \
                                        f"(it has {sorted(cmd.commands)})"
        cmd = cmd.commands[args[0]]
        path.append(args.pop(0))
    opts = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    given = [a.split("=", 1)[0] for a in args if a.startswith("-")]
    for opt in given:
        assert opt in opts, f"`{' '.join(words)}`: {' '.join(path)} has no option {opt} (it has {sorted(opts)})"
    if isinstance(cmd, click.Group):
        eager = {o for p in cmd.params if p.is_eager for o in p.opts} | {"--help"}
        assert given and set(given) <= eager, f"`{' '.join(words)}`: {' '.join(path)} needs a subcommand"
    try:
        cmd.make_context(" ".join(path), list(args))
    except click.exceptions.Exit as exc:  # --version/--help: parsed, printed, done
        assert exc.exit_code == 0
    except click.UsageError as exc:
        pytest.fail(f"`{' '.join(words)}`: {exc.format_message()}")


def script_commands(text: str) -> list[list[str]]:
    """The commands of a shell script that start a line (after `if`/`then`/...) or sit in a `$(...)`."""
    out = []
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        line = line.strip()
        if line.startswith("#"):
            continue
        for inner in re.findall(r"\$\(([^()]*)\)", line):
            out += _commands(inner)
        if re.match(r"(?:(?:if|then|else|elif|!)\s+)*(mlnb|make)\s", line):
            out += _commands(line)
    return out


def check_command(where: str, words: list[str], scripts: dict[str, str] | None = None) -> None:
    """`make X` is a Makefile target, `mlnb ...` parses, `bash SCRIPT` names a script whose own `mlnb`
    commands parse (``scripts``: {path: text}; default: this repository's files), any other tool is known."""
    tool = words[0].rsplit("/", 1)[-1]  # .venv/bin/mlnb is mlnb
    if tool == "make":
        targets = makefile_targets()
        wanted = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
        assert wanted, f"{where}: `{' '.join(words)}` names no target"
        missing = [t for t in wanted if t not in targets]
        assert not missing, f"{where}: `{' '.join(words)}`: no Makefile target {missing} (targets: {sorted(targets)})"
    elif tool == "mlnb":
        check_mlnb(words)
    elif tool == "bash":
        rel = words[1]
        text = scripts[rel] if scripts is not None and rel in scripts else \
            (REPO / rel).read_text(encoding="utf-8") if scripts is None and (REPO / rel).is_file() else None
        assert text is not None, f"{where}: `{' '.join(words)}`: no such script"
        inner = [w for w in script_commands(text) if w[0] in ("mlnb", "make")]
        assert inner, f"{rel}: runs no mlnb command"
        for cmd in inner:
            check_command(rel, cmd, scripts)
    else:
        assert tool in OTHER_TOOLS, f"{where}: `{' '.join(words)}`: unexpected tool {tool!r}"


TEMPLATES = {"github": (GITHUB, github_commands), "gitlab": (GITLAB, gitlab_commands)}


# --- 1. schemas -----------------------------------------------------------------------------------------

def test_check_jsonschema_is_installed() -> None:
    assert importlib.util.find_spec("check_jsonschema") is not None, "check-jsonschema must be installed"
    major, minor = (int(x) for x in importlib.metadata.version("check-jsonschema").split(".")[:2])
    assert (major, minor) >= (0, 29)


@pytest.mark.parametrize(("path", "schema"), [(GITHUB, "vendor.github-workflows"),
                                              (GITHUB, "custom.github-workflows-require-timeout"),
                                              (MONITOR, "vendor.github-workflows"),
                                              (MONITOR, "custom.github-workflows-require-timeout"),
                                              (GITLAB, "vendor.gitlab-ci")], ids=lambda v: str(v).split("/")[-1])
def test_template_is_valid_under_the_bundled_schema(path: Path, schema: str) -> None:
    proc = _check_jsonschema(schema, path)
    assert proc.returncode == 0, f"{path.name} is invalid under {schema}:\n{proc.stdout}{proc.stderr}"


def test_validation_catches_a_github_job_without_runs_on(tmp_path: Path) -> None:
    text = GITHUB.read_text(encoding="utf-8")
    broken, n = re.subn(r"^    runs-on: .*\n", "", text, count=1, flags=re.M)
    assert n == 1
    (tmp_path / "ok.yml").write_text(text, encoding="utf-8")
    (tmp_path / "broken.yml").write_text(broken, encoding="utf-8")
    assert _check_jsonschema("vendor.github-workflows", tmp_path / "ok.yml").returncode == 0
    proc = _check_jsonschema("vendor.github-workflows", tmp_path / "broken.yml")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # 1: invalid (not a crash, which is 2+)
    assert "validation errors" in (proc.stdout + proc.stderr).lower()


def test_validation_catches_a_gitlab_job_whose_script_is_a_number(tmp_path: Path) -> None:
    pipeline = _load(GITLAB)
    (tmp_path / ".gitlab-ci.yml").write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    assert _check_jsonschema("vendor.gitlab-ci", tmp_path / ".gitlab-ci.yml").returncode == 0  # round trip ok
    pipeline["nbval"]["script"] = 42
    (tmp_path / ".gitlab-ci.yml").write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    proc = _check_jsonschema("vendor.gitlab-ci", tmp_path / ".gitlab-ci.yml")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "validation errors" in (proc.stdout + proc.stderr).lower()


# --- 2. commands and their order ------------------------------------------------------------------------

def test_command_parsing() -> None:
    assert _commands('echo "$PWD/.venv/bin" >> "$GITHUB_PATH"') == [["echo", "$PWD/.venv/bin"]]
    assert _commands("if [ -f x ]; then mlnb report; fi") == [["[", "-f", "x", "]"], ["mlnb", "report"]]
    assert _commands("apt-get update -qq && FOO=1 make setup > /dev/null") == [
        ["apt-get", "update", "-qq"], ["make", "setup"]]


@pytest.mark.parametrize("name", [*TEMPLATES, "monitor"])
def test_every_command_exists(name: str) -> None:
    path, collect = TEMPLATES[name] if name in TEMPLATES else (MONITOR, github_commands)
    commands = collect(_load(path))
    assert commands, f"{path.name}: no commands found"
    for words in commands:
        check_command(path.name, words)


def test_command_checks_catch_a_missing_script_and_a_wrong_mlnb_option_inside_it() -> None:
    with pytest.raises(AssertionError, match="no such script"):
        check_command("x.yml", ["bash", "scripts/nope.sh"])
    script = "#!/bin/bash\nif [ -f x ]; then\n  mlnb monitor --log x --sinse 24h\nfi\n"
    assert script_commands(script + 'v="$(mlnb verdict)"\n') == [["mlnb", "monitor", "--log", "x", "--sinse", "24h"],
                                                                 ["mlnb", "verdict"]]
    with pytest.raises(AssertionError, match="has no option --sinse"):
        check_command("x.yml", ["bash", "s.sh"], {"s.sh": script})


@pytest.mark.parametrize("name", TEMPLATES)
def test_stages_run_in_order(name: str) -> None:
    path, collect = TEMPLATES[name]
    commands = [(w[0].rsplit("/", 1)[-1], w[1] if len(w) > 1 else "") for w in collect(_load(path))]
    first = {}
    for label, tool, arg in ORDER:
        assert (tool, arg) in commands, f"{path.name}: `{tool} {arg}` ({label}) is never run"
        first[label] = commands.index((tool, arg))
    assert first["install"] < first["pull"] < min(first["lint"], first["unit"])
    assert max(first["lint"], first["unit"]) < first["nbval"] < first["build"] < first["push"] < first["image"], first
    assert first["image"] < first["deploy"] < first["apply"], first
    assert ("mlnb", "dvc") in commands and ["mlnb", "dvc", "sync", "--check"] in collect(_load(path))


def test_github_structure() -> None:
    wf = _load(GITHUB)
    on = _github_on(wf)
    assert "push" in on and "pull_request" in on
    assert wf["permissions"] == {"contents": "read"}
    assert wf["concurrency"]["cancel-in-progress"] is True and "github.ref" in wf["concurrency"]["group"]
    jobs = wf["jobs"]
    assert all("timeout-minutes" in job for job in jobs.values())
    steps = jobs["pipeline"]["steps"]
    setup = next(s for s in steps if "setup-python" in s.get("uses", ""))
    assert str(setup["with"]["python-version"]) == "3.11"
    assert any('.venv/bin" >> "$GITHUB_PATH"' in s.get("run", "") for s in steps)
    cached = {s["with"]["path"]: s["with"]["key"] for s in steps if s.get("uses", "").startswith("actions/cache")}
    assert "hashFiles('pyproject.toml')" in cached["~/.cache/pip"]
    assert "hashFiles('dvc.lock')" in cached[".dvc/cache"]
    uploaded = "\n".join(s["with"]["path"] for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    for path in ("reports/", "products/evaluate/metrics.json", "dvc.lock"):
        assert path in uploaded
    default_branch = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
    push = next(s for s in steps if s.get("run") == "mlnb push")
    assert "github.event_name == 'push'" in push["if"] and default_branch in push["if"]
    for step in steps:
        if step.get("run") in ("mlnb pull", "mlnb push"):
            assert step["env"]["MLNB_DVC_REMOTE"] == "${{ vars.MLNB_DVC_REMOTE }}"
    image = jobs["image"]
    assert image["needs"] == "pipeline" and default_branch in image["if"]


def test_gitlab_structure() -> None:
    pipeline = _load(GITLAB)
    default = pipeline["default"]
    assert default["image"] == "python:3.11-slim"
    assert any("apt-get install" in line and "git" in line and "make" in line for line in default["before_script"])
    assert "make setup" in default["before_script"]
    assert any(line.startswith("export PATH=") and ".venv/bin" in line for line in default["before_script"])
    cached = {p for c in default["cache"] for p in c["paths"]}
    assert {".dvc/cache", ".cache/pip"} <= cached
    assert pipeline["variables"]["PIP_CACHE_DIR"].startswith("$CI_PROJECT_DIR/")
    jobs = gitlab_jobs(pipeline)
    build = next(job for job in jobs.values() if "mlnb build" in job["script"])
    assert build["artifacts"]["when"] == "always"
    paths = build["artifacts"]["paths"]
    assert "dvc.lock" in paths and "reports/" in paths
    assert "products/" in paths or "products/evaluate/metrics.json" in paths
    for command in ("mlnb push", "docker build"):
        job = next(job for job in jobs.values() if any(line.startswith(command) for line in job["script"]))
        assert {"if": DEFAULT_BRANCH_RULE} in job["rules"], f"`{command}` must run on the default branch only"
    for name, job in jobs.items():
        if name not in ("push", "package", "manifests", "apply", "monitor"):
            assert "only" not in job and job["rules"] == [NOT_SCHEDULED, {"when": "on_success"}], \
                f"job {name} must run on every pipeline but the scheduled (monitoring) ones"


# --- 3. telemetry and credentials -----------------------------------------------------------------------

@pytest.mark.parametrize(("path", "key"), [(GITHUB, "env"), (MONITOR, "env"), (GITLAB, "variables")],
                         ids=["github", "monitor", "gitlab"])
def test_telemetry_is_off(path: Path, key: str) -> None:
    env = _load(path)[key]
    for var, value in TELEMETRY_OFF.items():
        assert var in env, f"{path.name}: {key}.{var} is not set"
        assert env[var] == value, f"{path.name}: {key}.{var} = {env[var]!r}, want the string {value!r}"


CREDENTIAL = re.compile(r"(?i)[\w.-]*(secret|password|passwd|token|access_key|api_key|private_key)[\w.-]*"
                        r"\s*[:=]\s*[\"']?([^\s\"'#]+)")
LITERAL_KEYS = re.compile(r"AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----"
                          r"|gh[pousr]_[A-Za-z0-9]{20,}|glpat-[A-Za-z0-9_-]{20}")


def test_credential_pattern() -> None:
    assert CREDENTIAL.search("AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI/K7MDENG").group(2).startswith("wJalr")
    assert CREDENTIAL.search("AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}").group(2) == "${{"
    assert LITERAL_KEYS.search("key: AKIAIOSFODNN7EXAMPLE")


@pytest.mark.parametrize("path", [GITHUB, MONITOR, GITLAB], ids=["github", "monitor", "gitlab"])
def test_no_credentials_in_the_templates(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not LITERAL_KEYS.search(text), f"{path.name}: a credential-looking literal"
    for n, line in enumerate(text.splitlines(), 1):
        for m in CREDENTIAL.finditer(line):
            value = m.group(2)
            assert value.startswith(("${{", "$")), f"{path.name}:{n}: a literal credential? {line.strip()!r}"
            if path != GITLAB:
                assert value == "${{" and "secrets." in line[m.end():], f"{path.name}:{n}: use ${{{{ secrets.X }}}}"
    assert "MLNB_DVC_REMOTE" in text, f"{path.name}: say where the DVC remote comes from"
    assert not re.search(r"dvc remote (add|modify)(?! --local)", text), "remote config belongs in .dvc/config.local"


# --- 4. deploy only what the gate says is promotable ----------------------------------------------------

def _substituted(line: str) -> list[list[str]]:
    """The commands inside ``$(...)`` of a shell line (e.g. ``echo "verdict=$(mlnb verdict)"``)."""
    return [cmd for inner in re.findall(r"\$\(([^()]*)\)", line) for cmd in _commands(inner)]


def test_github_deploys_only_a_promotable_build() -> None:
    wf = _load(GITHUB)
    pipeline, image = wf["jobs"]["pipeline"], wf["jobs"]["image"]
    steps = pipeline["steps"]
    build = next(i for i, s in enumerate(steps) if s.get("run") == "mlnb build")
    verdict = next(i for i, s in enumerate(steps) if "mlnb verdict" in s.get("run", ""))
    assert verdict == build + 1 and steps[verdict]["id"] == "verdict"
    assert '>> "$GITHUB_OUTPUT"' in steps[verdict]["run"]
    for words in _substituted(steps[verdict]["run"]):
        check_mlnb(words)
    assert pipeline["outputs"]["verdict"] == "${{ steps.verdict.outputs.verdict }}"
    assert "needs.pipeline.outputs.verdict == 'promotable'" in image["if"]


def test_gitlab_deploys_only_a_promotable_build() -> None:
    jobs = gitlab_jobs(_load(GITLAB))
    build, package = jobs["build"], jobs["package"]
    assert build["artifacts"]["reports"]["dotenv"] == "gate.env"
    line = next(ln for ln in build["script"] if "mlnb verdict" in ln)
    assert build["script"].index(line) == build["script"].index("mlnb build") + 1 and "> gate.env" in line
    for words in _substituted(line):
        check_mlnb(words)
    assert "build" in package["dependencies"]
    guard = package["script"][0]
    assert '[ "$MLNB_GATE_VERDICT" != "promotable" ]' in guard and "exit 0" in guard
    assert package["script"][1].startswith("docker build")


# --- 5. delivery: the serving image, then `mlnb deploy k8s` + `kubectl apply` (here and in the project
# templates `mlnb init` writes) --------------------------------------------------------------------------

PROJECT = "demo-project"


@pytest.fixture(scope="module")
def project_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The CI files `mlnb init` writes into a project called demo-project, rendered."""
    from mlnb.services.scaffold import template_files

    root = tmp_path_factory.mktemp("init")
    files = template_files(PROJECT)
    out = {}
    for name, rel in (("github", ".github/workflows/mlnb.yml"), ("gitlab", ".gitlab-ci.yml"),
                      ("monitor", ".github/workflows/monitor.yml"), ("script", MONITOR_SCRIPT)):
        (root / name).mkdir()
        out[name] = root / name / Path(rel).name
        out[name].write_text(files[rel], encoding="utf-8")
    return out


@pytest.mark.parametrize(("name", "schema"), [("github", "vendor.github-workflows"),
                                              ("github", "custom.github-workflows-require-timeout"),
                                              ("monitor", "vendor.github-workflows"),
                                              ("monitor", "custom.github-workflows-require-timeout"),
                                              ("gitlab", "vendor.gitlab-ci")])
def test_project_template_is_valid_under_the_bundled_schema(project_templates: dict[str, Path], name: str,
                                                            schema: str) -> None:
    proc = _check_jsonschema(schema, project_templates[name])
    assert proc.returncode == 0, f"{name} project template is invalid under {schema}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("name", ["github", "gitlab"])
def test_project_template_commands_exist_and_hold_no_credential(project_templates: dict[str, Path], name: str) -> None:
    path = project_templates[name]
    collect = github_commands if name == "github" else gitlab_commands
    script = {MONITOR_SCRIPT: project_templates["script"].read_text(encoding="utf-8")}
    for words in collect(_load(path)):
        assert words[0] != "make", f"{path.name}: `{' '.join(words)}`: a project's Makefile differs from this one"
        check_command(path.name, words, script)
    text = path.read_text(encoding="utf-8")
    assert "{{project_name}}" not in text and "{{mlnb_version}}" not in text
    assert not LITERAL_KEYS.search(text)
    for n, line in enumerate(text.splitlines(), 1):
        for m in CREDENTIAL.finditer(line):
            assert m.group(2).startswith("$"), f"{path.name}:{n}: a literal credential? {line.strip()!r}"
            if name == "github":
                assert m.group(2) == "${{" and "secrets." in line[m.end():], f"{path.name}:{n}: use secrets"
    commands = [(w[0], w[1]) for w in collect(_load(path)) if len(w) > 1]
    order = [commands.index(c) for c in [("mlnb", "build"), ("docker", "build"), ("mlnb", "deploy"),
                                          ("kubectl", "apply")]]
    assert order == sorted(order), order
    verdict = [w for line in text.splitlines() for w in _substituted(line) if w[:2] == ["mlnb", "verdict"]]
    assert verdict, "the gate's verdict reaches the delivery jobs"
    for words in verdict:
        check_mlnb(words)


def _runs(job: dict) -> list[list[str]]:
    return [cmd for step in job.get("steps", []) if "run" in step for line in _lines(step["run"])
            for cmd in _commands(line)]


def _option(words: list[str], name: str) -> str:
    return words[words.index(name) + 1]


def _deploy_command(commands: list[list[str]]) -> tuple[list[str], list[str], list[str], list[str]]:
    """The image build, its push, `mlnb deploy k8s` and `kubectl apply`; the deploy is of the image pushed."""
    build = next(c for c in commands if c[:2] == ["docker", "build"])
    assert _option(build, "--target") == "serve", "the serving image is the Dockerfile's serve target"
    tag = _option(build, "-t")
    push = next(c for c in commands if c[:2] == ["docker", "push"])
    deploy = next(c for c in commands if c[:3] == ["mlnb", "deploy", "k8s"])
    apply = next(c for c in commands if c[:2] == ["kubectl", "apply"])
    assert push == ["docker", "push", tag] and _option(deploy, "--image") == tag
    assert _option(deploy, "--strategy") == "canary"
    assert apply == ["kubectl", "apply", "-f", f"{_option(deploy, '--out')}/serving.yaml"]
    return build, push, deploy, apply


@pytest.mark.parametrize("which", ["repo", "project"])
def test_github_delivers_a_promotable_build_to_kubernetes(project_templates: dict[str, Path], which: str) -> None:
    wf = _load(GITHUB if which == "repo" else project_templates["github"])
    jobs = wf["jobs"]
    image, deploy = jobs["image"], jobs["deploy"]
    default_branch = "github.ref == format('refs/heads/{0}', github.event.repository.default_branch)"
    for job in (image, deploy):
        for condition in ("needs.pipeline.outputs.verdict == 'promotable'", "github.event_name == 'push'",
                          default_branch):
            assert condition in job["if"], job["if"]
    assert "vars.MLNB_SERVING_IMAGE != ''" in deploy["if"] and "vars.MLNB_K8S_NAMESPACE != ''" in deploy["if"]
    assert set(deploy["needs"]) == {"pipeline", "image"} and deploy["environment"] == "production"
    _deploy_command(_runs(image) + _runs(deploy))
    assert image["env"]["IMAGE"].endswith(":${{ github.sha }}") and "vars.MLNB_SERVING_IMAGE" in image["env"]["IMAGE"]
    assert deploy["env"]["IMAGE"] == "${{ vars.MLNB_SERVING_IMAGE }}:${{ github.sha }}"
    push = next(s for s in image["steps"] if "docker push" in s.get("run", ""))
    assert push["if"] == "vars.MLNB_SERVING_IMAGE != ''"
    assert push["env"]["REGISTRY_PASSWORD"] == "${{ secrets.REGISTRY_PASSWORD }}"
    context = next(s for s in deploy["steps"] if "k8s-set-context" in s.get("uses", ""))
    assert context["with"]["kubeconfig"] == "${{ secrets.KUBECONFIG }}"
    steps = deploy["steps"]
    index = {key: next(i for i, s in enumerate(steps) if key in s.get("run", "") + s.get("uses", ""))
             for key in ("mlnb deploy k8s", "k8s-set-context", "kubectl apply")}
    assert index["mlnb deploy k8s"] < index["k8s-set-context"] < index["kubectl apply"]


@pytest.mark.parametrize("which", ["repo", "project"])
def test_gitlab_delivers_a_promotable_build_to_kubernetes(project_templates: dict[str, Path], which: str) -> None:
    pipeline = _load(GITLAB if which == "repo" else project_templates["gitlab"])
    gate = "build" if which == "repo" else "pipeline"  # the job whose dotenv carries MLNB_GATE_VERDICT
    jobs = gitlab_jobs(pipeline)
    package, manifests, apply = jobs["package"], jobs["manifests"], jobs["apply"]
    stages = pipeline["stages"]
    assert stages.index(package["stage"]) < stages.index(manifests["stage"]) == stages.index(apply["stage"])
    for job in (package, manifests, apply):
        assert any(DEFAULT_BRANCH_RULE in rule["if"] for rule in job["rules"]), "default branch only"
        guard = job["script"][0]
        assert '[ "$MLNB_GATE_VERDICT" != "promotable" ]' in guard and "exit 0" in guard
    for job in (manifests, apply):
        assert job["rules"] == [NOT_SCHEDULED, {"if": f"{DEFAULT_BRANCH_RULE} && $K8S_NAMESPACE"}]
    assert manifests["dependencies"] == [gate] and apply["needs"] == [gate, "manifests"]
    assert apply["environment"] == "production" and "deploy/k8s/" in manifests["artifacts"]["paths"]
    image_name = {job: {**pipeline.get("variables", {}), **jobs[job].get("variables", {})}["IMAGE_NAME"]
                  for job in ("package", "manifests")}
    assert image_name["package"] == image_name["manifests"] == "$CI_REGISTRY_IMAGE/serving"
    commands = [cmd for job in (package, manifests, apply) for line in _lines(job["script"]) for cmd in _commands(line)]
    _deploy_command(commands)
    assert "KUBECONFIG" not in yaml.safe_dump(pipeline), "KUBECONFIG is a File variable of the project, never here"


def test_the_repo_ci_deploy_command_writes_valid_manifests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GitHub deploy step's `mlnb deploy k8s` line, its variables filled in, run in this repository."""
    from click.testing import CliRunner

    from mlnb.cli.main import main
    from tests import k8s_checks

    _, _, deploy, _ = _deploy_command(_runs(_load(GITHUB)["jobs"]["image"]) + _runs(_load(GITHUB)["jobs"]["deploy"]))
    values = {"$IMAGE": "ghcr.io/acme/mlnb-serving:0123456789abcdef", "$MLNB_K8S_NAMESPACE": "ml-serving",
              "$MLFLOW_TRACKING_URI": "https://mlflow.example.com", "deploy/k8s": str(tmp_path / "k8s")}
    monkeypatch.chdir(REPO)  # the project: the model name comes from its env.yaml
    ran = CliRunner().invoke(main, [values.get(w, w) for w in deploy[1:]])
    assert ran.exit_code == 0, ran.output
    docs = k8s_checks.read(tmp_path / "k8s" / "serving.yaml")
    k8s_checks.validate_all(docs)
    assert {d["kind"] for d in docs} >= {"Rollout", "AnalysisTemplate"}


def test_the_project_dockerfile_has_the_serve_target_the_delivery_builds(tmp_path: Path) -> None:
    """What `docker build --target serve` builds in a new project: `mlnb serve` as user 10001 on port 8080
    (what the manifests of `mlnb deploy k8s` expect); hadolint-clean like the repository's Dockerfile."""
    from mlnb.services.scaffold import template_files

    text = template_files(PROJECT)["Dockerfile"]
    stages = re.split(r"^FROM .* AS (\w+)$", text, flags=re.M)
    serve = stages[stages.index("serve") + 1]
    assert 'ENTRYPOINT ["mlnb", "serve"]' in serve and "USER 10001" in serve and "EXPOSE 8080" in serve
    assert "MLNB_SERVE_HOST=0.0.0.0" in serve and "MLNB_SERVE_PORT=8080" in serve
    assert stages[-2] == "pipeline", "the pipeline image stays the default (last) target"
    (tmp_path / "Dockerfile").write_text(text, encoding="utf-8")
    hadolint = Path(sys.executable).with_name("hadolint")
    proc = subprocess.run([str(hadolint), "--failure-threshold", "warning", str(tmp_path / "Dockerfile")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- 6. monitoring: a scheduled job runs `mlnb monitor` and, on drift, proposes a retrained candidate -------
# (scripts/monitor-ci.sh itself is run in tests/unit/cli/test_monitor_ci.py)

def _gitlab_if(expr: str, env: dict[str, str]) -> bool:
    """GitLab's `rules:if` for what these files use: `&&` of `$VAR`, `$A == $B`, `$A != "text"`."""
    assert "||" not in expr and "(" not in expr and "=~" not in expr, f"extend the evaluator for {expr!r}"

    def value(operand: str) -> str | None:
        operand = operand.strip()
        if operand.startswith("$"):
            return env.get(operand[1:]) or None
        assert operand[0] == operand[-1] == '"', operand
        return operand[1:-1]

    def term(text: str) -> bool:
        for op in ("==", "!="):
            if op in text:
                left, right = text.split(op)
                return (value(left) == value(right)) == (op == "==")
        return value(text) is not None

    return all(term(t) for t in expr.split("&&"))


def _gitlab_runs(rules: list[dict] | None, env: dict[str, str]) -> bool:
    if rules is None:
        return True
    for rule in rules:
        if "if" not in rule or _gitlab_if(rule["if"], env):
            return rule.get("when", "on_success") != "never"
    return False


def gitlab_pipeline_jobs(pipeline: dict, **env: str) -> set[str]:
    """The jobs GitLab creates for a pipeline with these predefined variables (empty: no pipeline)."""
    if not _gitlab_runs(pipeline.get("workflow", {}).get("rules"), env):
        return set()
    return {name for name, job in gitlab_jobs(pipeline).items() if _gitlab_runs(job.get("rules"), env)}


def test_gitlab_rule_evaluator() -> None:
    env = {"CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main"}
    assert _gitlab_if(SCHEDULE, env) and _gitlab_if(DEFAULT_BRANCH_RULE, env)
    assert not _gitlab_if(f"{DEFAULT_BRANCH_RULE} && $K8S_NAMESPACE", env)
    assert _gitlab_if(f"{DEFAULT_BRANCH_RULE} && $K8S_NAMESPACE", {**env, "K8S_NAMESPACE": "ml"})
    assert not _gitlab_runs([NOT_SCHEDULED, {"when": "on_success"}], env)
    assert _gitlab_runs([NOT_SCHEDULED, {"when": "on_success"}], {**env, "CI_PIPELINE_SOURCE": "push"})
    assert not _gitlab_runs([{"if": '$CI_PIPELINE_SOURCE != "schedule"'}], env)


@pytest.mark.parametrize("which", ["repo", "project"])
def test_gitlab_scheduled_pipelines_run_only_the_monitor(project_templates: dict[str, Path], which: str) -> None:
    pipeline = _load(GITLAB if which == "repo" else project_templates["gitlab"])
    every = set(gitlab_jobs(pipeline))
    main = {"CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main", "K8S_NAMESPACE": "ml"}
    assert gitlab_pipeline_jobs(pipeline, CI_PIPELINE_SOURCE="schedule", **main) == {"monitor"}
    assert gitlab_pipeline_jobs(pipeline, CI_PIPELINE_SOURCE="push", **main) == every - {"monitor"}
    branch = {**main, "CI_COMMIT_BRANCH": "mlnb/retrain-20260101-052300"}  # the branch the monitor pushes
    delivery = {"push", "package", "manifests", "apply"}
    assert gitlab_pipeline_jobs(pipeline, CI_PIPELINE_SOURCE="push", **branch) == every - {"monitor"} - delivery
    mr = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_DEFAULT_BRANCH": "main",
          "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": branch["CI_COMMIT_BRANCH"]}
    assert gitlab_pipeline_jobs(pipeline, **mr) == every - {"monitor"} - delivery  # the gate runs on its MR


@pytest.mark.parametrize("which", ["repo", "project"])
def test_gitlab_monitor_job(project_templates: dict[str, Path], which: str) -> None:
    pipeline = _load(GITLAB if which == "repo" else project_templates["gitlab"])
    job = gitlab_jobs(pipeline)["monitor"]
    assert job["rules"] == [{"if": SCHEDULE}] and pipeline["stages"][-1] == job["stage"] == "monitor"
    assert job["resource_group"] and job["interruptible"] is False  # one at a time, never cancelled midway
    lines = _lines(job.get("before_script", [])) + _lines(job["script"])
    guard = lines[0]  # before anything is installed
    assert guard.startswith('if [ -z "$MLNB_PREDICTION_LOG_URL" ]; then echo ') and guard.endswith("exit 0; fi")
    commands = [c for line in lines for c in _commands(line)]
    assert commands[-1] == ["bash", MONITOR_SCRIPT]
    install = ["make", "setup"] if which == "repo" else ["pip", "install", "$INSTALL_MLNB"]
    assert commands.index(install) < commands.index(["mlnb", "pull"]) < commands.index(["bash", MONITOR_SCRIPT])
    if which == "repo":
        assert _lines(job["before_script"])[1:] == _lines(pipeline["default"]["before_script"])
    assert job["artifacts"]["when"] == "always" and "reports/" in job["artifacts"]["paths"]
    header = (GITLAB if which == "repo" else project_templates["gitlab"]).read_text(encoding="utf-8")
    for said in ("Pipeline schedules", "MLNB_PREDICTION_LOG_URL", "MLNB_RAW_DATA_URL", "MLNB_PUSH_TOKEN",
                 "merge_request.create"):
        assert said in header, f"the GitLab template says {said!r}"


@pytest.mark.parametrize("which", ["repo", "project"])
def test_github_monitor_workflow(project_templates: dict[str, Path], which: str) -> None:
    wf = _load(MONITOR if which == "repo" else project_templates["monitor"])
    on = _github_on(wf)
    assert set(on) == {"schedule", "workflow_dispatch"}
    [cron] = [entry["cron"] for entry in on["schedule"]]
    assert len(cron.split()) == 5, cron
    assert wf["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert wf["concurrency"] == {"group": "mlnb-monitor", "cancel-in-progress": False}
    [job] = wf["jobs"].values()
    assert job["if"] == "vars.MLNB_PREDICTION_LOG_URL != ''", "skipped, like deploy, until it is configured"
    for var in ("MLNB_PREDICTION_LOG_URL", "MLNB_RAW_DATA_URL", "MLNB_DVC_REMOTE", "MLFLOW_TRACKING_URI"):
        assert job["env"][var] == f"${{{{ vars.{var} }}}}", var
    steps = job["steps"]
    checkout = next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["token"] == "${{ secrets.MLNB_PR_TOKEN || github.token }}"
    commands = [c for s in steps if "run" in s for line in _lines(s["run"]) for c in _commands(line)]
    install = ["make", "setup"] if which == "repo" else ["pip", "install", "$INSTALL_MLNB"]
    assert commands.index(install) < commands.index(["mlnb", "pull"]) < commands.index(["bash", MONITOR_SCRIPT])
    run = next(s for s in steps if s.get("run") == f"bash {MONITOR_SCRIPT}")
    assert run["env"]["GH_TOKEN"] == "${{ secrets.MLNB_PR_TOKEN || github.token }}"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "${{ !cancelled() }}" and "reports/" in upload["with"]["path"]
    assert steps.index(upload) > steps.index(run)
    if which == "project":
        for words in github_commands(wf):
            check_command("monitor.yml", words, {MONITOR_SCRIPT: project_templates["script"].read_text()})


@pytest.mark.parametrize("which", ["repo", "project"])
def test_the_build_workflows_are_not_scheduled(project_templates: dict[str, Path], which: str) -> None:
    wf = _load(GITHUB if which == "repo" else project_templates["github"])
    assert "schedule" not in _github_on(wf), "the schedule belongs to monitor.yml"


@pytest.mark.parametrize("which", ["repo", "project"])
def test_the_monitor_script_runs_mlnb_monitor_with_options_it_has(project_templates: dict[str, Path],
                                                                  which: str) -> None:
    from mlnb.cli.monitor import monitor

    text = (REPO / MONITOR_SCRIPT if which == "repo" else project_templates["script"]).read_text(encoding="utf-8")
    assert text == (REPO / MONITOR_SCRIPT).read_text(encoding="utf-8"), "one script for both"
    commands = [c for c in script_commands(text) if c[0] == "mlnb"]
    for words in commands:
        check_mlnb(words)
    assert {tuple(c[:2]) for c in commands} >= {("mlnb", s) for s in ("build", "monitor", "verdict", "push")}
    [line] = [c for c in commands if c[1] == "monitor"]
    opts = {o for p in monitor.params for o in p.opts}
    used = [w for w in line if w.startswith("--")]
    assert used == ["--log", "--since", "--json", "--html"] and set(used) <= opts
    assert line[line.index("--log") + 1] == "predictions.jsonl"
    assert not LITERAL_KEYS.search(text)
    assert not re.search(r"(?i)\b\w*(token|secret|password)\w*=(?![\"']?\$)", text), "credentials only by name"
    assert not re.search(r"git push[^\n]*\b(main|master)\b", text), "never a push to the base branch"


def test_a_new_project_monitors_its_own_train_split() -> None:
    """`mlnb monitor`'s reference in a new project is the train split its `train` task writes."""
    from mlnb.services.scaffold import template_files

    files = template_files(PROJECT)
    params = yaml.safe_load(files["params.yaml"])
    spec = yaml.safe_load(files["pipeline.yaml"])
    train = next(t for t in spec["tasks"] if t["source"] == "notebooks/train.ipynb")
    assert params["monitor"]["reference"] == train["product"]["train"]
