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
from mlnb import registry
root = make_registry_project(Path(sys.argv[2]))
ids = fake_builds(root, json.loads(sys.argv[3]))
project = registry.open_project(root)
registry.promote(project, ids[0], note="first champion")
registry.promote(project, ids[1], note="second champion")
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


def jupyter_home(home: Path) -> dict[str, str]:
    """Config, data, settings and workspaces of the test server, all under ``home``."""
    config, data = home / "config", home / "data"
    (data / "labextensions").mkdir(parents=True)
    # The frontend under test is the one built from extension/ in this checkout, whatever is installed.
    (data / "labextensions" / "mlnb-jupyterlab").symlink_to(LABEXTENSION, target_is_directory=True)
    config.mkdir()
    # A synchronous contents manager: Ploomber's server extension wraps whatever manager it finds and
    # calls it synchronously, which breaks jupyter_server 2's default async one (/api/contents -> 500).
    (config / "jupyter_server_config.json").write_text(json.dumps({"ServerApp": {
        "jpserver_extensions": {"mlnb.jupyter": True},
        "contents_manager_class": "jupyter_server.services.contents.largefilemanager.LargeFileManager"}}))
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return {"JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(data),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_PREFER_ENV_PATH": "0",
            "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "IPYTHONDIR": str(home / "ipython")}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LabProject, LabServer]]:
    """The project and its Jupyter server; the server starts while the builds are being made."""
    from tests.registry_fixtures import make_registry_project

    if not (LABEXTENSION / "package.json").exists():
        pytest.fail(f"{LABEXTENSION} is not built: run `cd extension && jlpm install && jlpm build`")
    base = tmp_path_factory.mktemp("lab")
    root = make_registry_project(base)
    # An executed task notebook (its build run id is filled in below) and a plain one.
    write_notebook(root / "notebooks" / "plain.ipynb", {})
    home = tmp_path_factory.mktemp("jupyter")
    env = {**os.environ, **TELEMETRY_OFF, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    server_env = {**env, **jupyter_home(home), "MLNB_PROJECT_ROOT": str(root)}
    port, token = free_port(), secrets.token_hex(16)
    url, log = f"http://127.0.0.1:{port}", home / "jupyter.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.port_retries=0",
           "--ServerApp.ip=127.0.0.1", "--ServerApp.allow_root=True", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False", "--LabApp.extension_manager=readonly"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=server_env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        setup = subprocess.run([sys.executable, "-c", SETUP, str(REPO), str(base), json.dumps(BUILDS)], env=env,
                               capture_output=True, text=True, timeout=180)
        assert setup.returncode == 0, f"fake builds failed:\n{setup.stderr[-3000:]}"
        data = json.loads(setup.stdout.strip().splitlines()[-1])
        project = LabProject(Path(data["root"]), data["ids"], data["model_name"])
        write_notebook(root / "products" / "train" / "train.ipynb", {"mlnb": {"build_run_id": project.ids[2]}})

        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if http("GET", f"{url}/api/status", token)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab did not answer /api/status in 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        status, body = http("GET", f"{url}/mlnb/api/runs?limit=5", token)
        assert status == 200, f"mlnb server extension: GET runs -> {status} {body}\n{log.read_text()[-3000:]}"
        server = LabServer(url, token, log)
        yield project, server
    finally:
        stop(proc, url, token)


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
            shots = tmp_path_factory.getbasetemp() / "screenshots"
            shots.mkdir(exist_ok=True)
            shot = shots / f"{request.node.name}.png"
            try:
                pg.screenshot(path=str(shot), full_page=True)
                print(f"screenshot: {shot}\njupyter log: {lab_server.log}")
            except Exception as exc:  # a crashed page cannot be photographed; say so, keep the failure
                print(f"no screenshot ({exc}); jupyter log: {lab_server.log}")
        context.close()
