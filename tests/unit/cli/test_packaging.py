"""README, Makefile, pyproject.toml, environment.yml and Dockerfile agree."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import REPO


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_environment_yml_lists_the_same_dependencies() -> None:
    project = _pyproject()["project"]
    wanted = {_name(r): r for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(d) for d in conda + pip if not d.startswith("-")} - {"python", "pip"}
    assert listed == set(wanted), f"only in pyproject: {set(wanted) - listed}; only in environment.yml: {listed - set(wanted)}"
    for dep in conda + pip:
        name = _name(dep)
        if name in wanted:
            spec = dep[len(name):].strip()
            assert spec == wanted[name][len(name):].strip(), f"range of {name} differs: {dep!r} vs {wanted[name]!r}"


def test_dockerfile_installs_the_project_and_turns_telemetry_off() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"pip install[^\n]* \.", text), "the image must install dependencies from pyproject.toml"
    for var in ("PLOOMBER_STATS_ENABLED=false", "MLFLOW_DISABLE_TELEMETRY=true", "DO_NOT_TRACK=1"):
        assert var in text
    assert re.search(r"^USER (?!root)", text, re.M), "the image must not run as root"


def test_makefile_and_readme_agree_on_the_two_commands() -> None:
    makefile = (REPO / "Makefile").read_text()
    readme = (REPO / "README.md").read_text()
    for target in ("build", "test", "lab"):
        assert re.search(rf"^{target}:", makefile, re.M)
        assert f"make {target}" in readme
    assert "make test" in (REPO / ".ci/run").read_text()
    assert "mlnb = \"mlnb.cli.main:main\"" in (REPO / "pyproject.toml").read_text()
