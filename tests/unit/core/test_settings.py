"""``mlnb.core.settings``: every MLNB_* variable the product reads is declared, read typed and
dynamically, a bad value is one line naming it; ``mlnb settings`` lists them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlnb.core import settings
from mlnb.errors import SettingError, UserInputError
from tests.conftest import REPO

NAME = re.compile(r"\b(?:MLNB_[A-Z0-9_]*[A-Z0-9]|ENTRY_POINT)\b")  # and Ploomber's own ENTRY_POINT
# Where the product reads its variables (tests set their own, e.g. MLNB_SCREENSHOTS, not declared);
# MLNB_GATE_VERDICT is the CI templates' own variable, written and read by the pipeline's shell steps.
SOURCES = ("mlnb", "scripts", "extension/src", "Makefile", "Dockerfile")
NOT_READ_BY_MLNB = {"MLNB_GATE_VERDICT",
                    # CI variables of the scheduled monitoring job, read by scripts/monitor-ci.sh (README)
                    "MLNB_PREDICTION_LOG_URL", "MLNB_MONITOR_SINCE", "MLNB_RAW_DATA_URL", "MLNB_RAW_DATA_PATH",
                    "MLNB_PUSH_TOKEN", "MLNB_BASE_BRANCH", "MLNB_GIT_NAME", "MLNB_GIT_EMAIL"}


def literals() -> dict[str, list[str]]:
    """Every ``MLNB_*`` name in the product's sources -> where it occurs."""
    found: dict[str, list[str]] = {}
    for source in SOURCES:
        path = REPO / source
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()
                                              and p.suffix in (".py", ".ts", ".tsx", ".sh", "")
                                              and "node_modules" not in p.parts and "__pycache__" not in p.parts]
        for file in files:
            for lineno, line in enumerate(file.read_text(errors="replace").splitlines(), 1):
                for name in NAME.findall(line):
                    found.setdefault(name, []).append(f"{file.relative_to(REPO)}:{lineno}")
    return found


def test_every_mlnb_variable_in_the_source_is_declared() -> None:
    found = literals()
    assert "MLNB_SERVE_PORT" in found and "MLNB_SNAPSHOT_DIR" in found  # the grep sees the sources
    missing = {name: where[:3] for name, where in found.items()
               if name not in settings.SETTINGS and name not in NOT_READ_BY_MLNB}
    assert not missing, f"declare these in mlnb/core/settings.py: {missing}"


def test_every_declared_setting_is_used_and_documented() -> None:
    found = literals()
    for s in settings.SETTINGS.values():
        assert s.name in found, f"{s.name}: declared but never read (remove it)"
        assert s.help and "\n" not in s.help and s.kind in ("str", "path", "int", "float", "bool")
        if s.default is not None:
            assert settings.get(s.name, {}) == s.default


def test_no_module_reads_an_mlnb_variable_from_os_environ_directly() -> None:
    """``os.environ.get("MLNB_...")`` / ``os.getenv`` bypass the typed parse: go through settings.get
    (saving a raw value to put it back later is not a read: marked ``raw, restored``)."""
    direct = re.compile(r"(os\.environ\.get|os\.getenv|environ\.get)\(\s*(\"MLNB_|'MLNB_|[A-Z_]*ENV\b)")
    offenders = [f"{p.relative_to(REPO)}:{n}" for p in (REPO / "mlnb").rglob("*.py")
                 for n, line in enumerate(p.read_text().splitlines(), 1) if direct.search(line) and "raw, restored" not in line]
    assert not offenders, offenders


def test_values_are_parsed_and_read_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.get("MLNB_SERVE_PORT", {}) == 8080
    monkeypatch.setenv("MLNB_SERVE_PORT", "9001")
    assert settings.get("MLNB_SERVE_PORT") == 9001  # not cached at import
    monkeypatch.setenv("MLNB_SERVE_PORT", " ")
    assert settings.get("MLNB_SERVE_PORT") == 8080  # empty: unset
    assert settings.get("MLNB_ALLOW_UNSAFE_PICKLE", {"MLNB_ALLOW_UNSAFE_PICKLE": "Yes"}) is True
    assert settings.get("MLNB_ALLOW_UNSAFE_PICKLE", {"MLNB_ALLOW_UNSAFE_PICKLE": "0"}) is False
    assert settings.get("MLNB_SNAPSHOT_AFTER_S", {"MLNB_SNAPSHOT_AFTER_S": "0"}) == 0.0
    assert settings.get("MLNB_PROJECT_ROOT", {"MLNB_PROJECT_ROOT": "/tmp/p"}) == Path("/tmp/p")


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("MLNB_SERVE_PORT", "eighty", "MLNB_SERVE_PORT='eighty': expected an integer"),
    ("MLNB_SERVE_PORT", "70000", "MLNB_SERVE_PORT='70000': expected a value from 0 to 65535"),
    ("MLNB_SNAPSHOT_TIMEOUT", "soon", "MLNB_SNAPSHOT_TIMEOUT='soon': expected a number"),
    ("MLNB_SNAPSHOT_MAX_MB", "-1", "MLNB_SNAPSHOT_MAX_MB='-1': expected a value of at least 0"),
    ("MLNB_ALLOW_UNSAFE_PICKLE", "maybe\nnot", "MLNB_ALLOW_UNSAFE_PICKLE='maybe\\nnot': expected a boolean"),
])
def test_a_bad_value_is_one_line_naming_the_variable_and_value(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingError) as err:
        settings.get(name, {name: value})
    assert isinstance(err.value, UserInputError) and err.value.exit_code == 2
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def test_an_undeclared_name_is_a_programming_error() -> None:
    with pytest.raises(KeyError, match="MLNB_NOPE: not declared"):
        settings.get("MLNB_NOPE")


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The installed CLI's code path (``python -m mlnb.cli``) with this tree first on the path."""
    full = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return subprocess.run([sys.executable, "-m", "mlnb.cli", "settings", *args], env=full, capture_output=True,
                          text=True, timeout=60)


def test_mlnb_settings_json_lists_every_setting_with_value_default_and_help(tmp_path: Path) -> None:
    res = _cli("--json", MLNB_SERVE_PORT="9100", MLNB_DVC_REMOTE="https://alice:s3cret@dvc.example/r")
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert list(rows) == list(settings.SETTINGS)
    assert rows["MLNB_SERVE_PORT"] | {"help": ""} == {"name": "MLNB_SERVE_PORT", "type": "int", "value": 9100,
                                                       "default": 8080, "set": True, "internal": False,
                                                       "error": None, "help": ""}
    assert rows["MLNB_SERVE_PORT"]["help"]
    assert rows["MLNB_SERVE_HOST"]["value"] == rows["MLNB_SERVE_HOST"]["default"] == "127.0.0.1"
    assert "s3cret" not in res.stdout and rows["MLNB_DVC_REMOTE"]["value"] == "https://alice:***@dvc.example/r"
    assert rows["MLNB_SNAPSHOT_DIR"]["internal"] is True


def test_mlnb_settings_table_and_a_bad_value() -> None:
    ok = _cli()
    assert ok.returncode == 0 and "MLNB_SERVE_PORT" in ok.stdout and "8080" in ok.stdout
    bad = _cli(MLNB_SERVE_WORKERS="lots")
    assert bad.returncode == 2 and "(invalid)" in bad.stdout
    assert bad.stderr.strip() == "mlnb: error: MLNB_SERVE_WORKERS='lots': expected an integer"
