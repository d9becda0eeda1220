"""Fixtures of the real-browser tests: a real JupyterLab server over a throwaway mlnb project with
real MLflow builds, and headless Debian Chromium driven by Playwright (no downloaded browser)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LABEXTENSION = REPO / "mlnb" / "labextension"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "PLOOMBER_STATS_ENABLED": "false",
                 "PLOOMBER_VERSION_CHECK_DISABLED": "true", "DVC_NO_ANALYTICS": "1"}

# Four builds (oldest first): v1, v2 and v3 registered; the fourth failed its gate (no version).
BUILDS = [
    {"f1": 0.90, "roc_auc": 0.95, "gate": True},
    {"f1": 0.92, "roc_auc": 0.96, "gate": True},
    {"f1": 0.95, "roc_auc": 0.98, "gate": True},
    {"f1": 0.80, "roc_auc": 0.85, "gate": False},
]

# Runs in a fresh interpreter, so this process's MLflow state stays untouched: the builds, then
# v1 and v2 promoted in turn through the real registry (champion = build 2, previous = build 1).
SETUP = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.registry_fixtures import MODEL_NAME, fake_builds, make_registry_project
from mlnb.core.project import load_project
from mlnb.services import promotion, registry
root = make_registry_project(Path(sys.argv[2]))
ids = fake_builds(root, json.loads(sys.argv[3]))
project = registry.open_registry(load_project(root))
promotion.promote(project, ids[0], note="first champion")
promotion.promote(project, ids[1], note="second champion")
print(json.dumps({"root": str(root), "ids": ids, "model_name": MODEL_NAME}))
"""


@dataclass(frozen=True)
class LabProject:
    root: Path
    ids: list[str]
    model_name: str

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def alias(self, alias: str = "champion"):
        """The registered version behind ``alias`` (read straight from MLflow)."""
        return self.client().get_model_version_by_alias(self.model_name, alias)

    def build_of(self, alias: str = "champion") -> str:
        """The build run id whose model ``alias`` points at (the tag the promotion wrote)."""
        return self.alias(alias).tags["mlnb.build_run_id"]

    def audit(self) -> list[dict]:
        path = self.root / "promotions.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class LabServer:
    url: str
    token: str
    log: Path

    @property
    def runtime_dir(self) -> Path:
        """The server's runtime directory (``jpserver-<pid>.json``: how `mlnb debug` finds it)."""
        return self.log.parent / "runtime"


def write_notebook(path: Path, metadata: dict) -> None:
    nb = {"nbformat": 4, "nbformat_minor": 5, "cells": [
        {"cell_type": "code", "id": "c0", "metadata": {}, "execution_count": 1, "source": "print('f1', 0.95)",
         "outputs": [{"output_type": "stream", "name": "stdout", "text": "f1 0.95\n"}]}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     **metadata}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, token: str) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


LAB_SCRIPT = REPO / "scripts" / "lab"


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests save screenshots of the states they reach: ``$MLNB_SCREENSHOTS`` when
    set (the docs use them), else ``<pytest basetemp>/screenshots``."""
    out = Path(os.environ.get("MLNB_SCREENSHOTS") or tmp_path_factory.getbasetemp() / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def lab_env(home: Path) -> dict[str, str]:
    """What the test chooses besides port and token: throwaway runtime, workspace and user-level
    directories (the machine user's own ~/.jupyter stays out); the installed configuration of the
    venv (``make setup``) is the product's and is used as it is."""
    dirs = {"JUPYTER_RUNTIME_DIR": home / "runtime", "JUPYTERLAB_WORKSPACES_DIR": home / "workspaces",
            "JUPYTERLAB_SETTINGS_DIR": home / "user-settings", "JUPYTER_CONFIG_DIR": home / "user-config",
            "JUPYTER_DATA_DIR": home / "user-data"}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return {key: str(path) for key, path in dirs.items()}


def start_lab(root: Path, home: Path, env: dict[str, str],
              prefix: list[str] | None = None) -> tuple[subprocess.Popen, LabServer]:
    """``scripts/lab`` (what ``make lab`` runs) in ``root`` with this test's venv, port and token
    (``prefix``: e.g. a command that runs it as another user)."""
    port, token = free_port(), secrets.token_hex(16)
    log = home / "jupyter.log"
    cmd = [*(prefix or []), str(LAB_SCRIPT), f"--port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env={**env, **lab_env(home), "VENV": sys.prefix}, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    return proc, LabServer(f"http://127.0.0.1:{port}", token, log)


def wait_for(proc: subprocess.Popen, server: LabServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"scripts/lab exited with {proc.returncode}:\n{server.log.read_text()[-3000:]}")
        try:
            if http("GET", f"{server.url}/api/status", server.token)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"jupyter lab did not answer /api/status in {timeout:g} s:\n{server.log.read_text()[-3000:]}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabProject, LabServer]]:
    """The project and its Jupyter server, started as `make lab` starts it; the server starts while
    the builds are being made."""
    from tests.registry_fixtures import make_registry_project

    if not (LABEXTENSION / "package.json").exists():
        pytest.fail(f"{LABEXTENSION} is not built: run `make setup`")
    base = tmp_path_factory.mktemp("lab")
    root = make_registry_project(base)
    # An executed task notebook (its build run id is filled in below) and a plain one.
    write_notebook(root / "notebooks" / "plain.ipynb", {})
    home = tmp_path_factory.mktemp("jupyter")
    env = {**os.environ, **TELEMETRY_OFF, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    proc, server = start_lab(root, home, env)
    try:
        setup = subprocess.run([sys.executable, "-c", SETUP, str(REPO), str(base), json.dumps(BUILDS)], env=env,
                               capture_output=True, text=True, timeout=180)
        assert setup.returncode == 0, f"fake builds failed:\n{setup.stderr[-3000:]}"
        data = json.loads(setup.stdout.strip().splitlines()[-1])
        project = LabProject(Path(data["root"]), data["ids"], data["model_name"])
        write_notebook(root / "products" / "train" / "train.ipynb", {"mlnb": {"build_run_id": project.ids[2]}})
        wait_for(proc, server)
        status, body = http("GET", f"{server.url}/mlnb/api/runs?limit=5", server.token)
        assert status == 200, f"mlnb server extension: GET runs -> {status} {body}\n{server.log.read_text()[-3000:]}"
        yield project, server
    finally:
        stop(proc, server.url, server.token)


@pytest.fixture(scope="module")
def lab_project(lab: tuple[LabProject, LabServer]) -> LabProject:
    return lab[0]


@pytest.fixture(scope="module")
def lab_server(lab: tuple[LabProject, LabServer]) -> LabServer:
    return lab[1]


def stop(proc: subprocess.Popen, url: str, token: str) -> None:
    """Shut the kernels down, stop the server we started, then anything left in its process group."""
    if proc.poll() is None:
        try:
            status, body = http("GET", f"{url}/api/kernels", token)
            for kernel in json.loads(body) if status == 200 else []:
                http("DELETE", f"{url}/api/kernels/{kernel['id']}", token)
        except (OSError, ValueError):
            pass
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def page(browser, lab_server: LabServer, request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A fresh browser context on the server; a screenshot is saved when the test fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            shot = screenshot_dir(tmp_path_factory) / f"failed-{request.node.name}.png"
            try:
                pg.screenshot(path=str(shot), full_page=True)
                print(f"screenshot: {shot}\njupyter log: {lab_server.log}")
            except Exception as exc:  # a crashed page cannot be photographed; say so, keep the failure
                print(f"no screenshot ({exc}); jupyter log: {lab_server.log}")
        context.close()
