"""JupyterLab as `make lab` starts it (scripts/lab, the venv's installed configuration): the file
browser lists the project, a notebook opens, the page logs no console error and shows no news toast;
it starts as root (this module's server, when the tests run as root) and as a normal user."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    CHROMIUM,
    REPO,
    TELEMETRY_OFF,
    LabProject,
    LabServer,
    http,
    lab_env,
    screenshot_dir,
    start_lab,
    stop,
    wait_for,
)

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the "
                "browser tests", allow_module_level=True)

from playwright.sync_api import Page, expect

from tests.e2e.test_promote_ui import open_lab

pytestmark = pytest.mark.integration


def test_the_contents_api_serves_the_project(lab_server: LabServer) -> None:
    status, body = http("GET", f"{lab_server.url}/api/contents/notebooks?content=1", lab_server.token)
    assert status == 200, body  # Ploomber's contents manager around jupytext's async one answered 500 here
    assert "plain.ipynb" in {item["name"] for item in json.loads(body)["content"]}
    status, body = http("GET", f"{lab_server.url}/lab/api/settings/@jupyterlab/apputils-extension:notification",
                        lab_server.token)
    assert status == 200, body
    defaults = json.loads(body)["schema"]["properties"]  # overrides.json (make setup) sets the defaults
    assert defaults["fetchNews"]["default"] == "false" and defaults["checkForUpdates"]["default"] is False


def test_lab_opens_the_project_and_a_notebook_without_errors(page: Page, lab_server: LabServer,
                                                              lab_project: LabProject,
                                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    open_lab(page, lab_server)
    browser = page.locator("#filebrowser .jp-DirListing-content")
    for name in ("notebooks", "pipeline.yaml", "env.yaml"):
        expect(browser.locator(f'.jp-DirListing-item[title^="Name: {name}"]')).to_have_count(1)
    shots = screenshot_dir(tmp_path_factory)
    page.screenshot(path=str(shots / "lab-file-browser.png"))

    browser.locator('.jp-DirListing-item[title^="Name: notebooks"]').dblclick()
    browser.locator('.jp-DirListing-item[title^="Name: plain.ipynb"]').dblclick()
    notebook = page.locator(".jp-NotebookPanel:visible")
    expect(notebook.locator(".jp-Cell").first).to_contain_text("print('f1', 0.95)")
    expect(notebook.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=30_000)
    page.screenshot(path=str(shots / "lab-notebook-open.png"))

    expect(page.locator(".Toastify__toast")).to_have_count(0)  # no "Jupyter news?" question, no update nag
    assert errors == [], "console errors on page load:\n" + "\n".join(errors)


def test_the_palette_has_mlnbs_commands(page: Page, lab_server: LabServer,
                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    open_lab(page, lab_server)
    page.keyboard.press("Control+Shift+C")
    search = page.locator(".lm-CommandPalette-input")
    expect(search).to_be_visible()
    search.fill("mlnb")
    palette = page.locator("#command-palette")
    for command in ("mlnb:open-runs", "mlnb:promote", "mlnb:rollback"):  # stable ids: shortcuts, other extensions
        expect(palette.locator(f'.lm-CommandPalette-item[data-command="{command}"]')).to_have_count(1)
    page.screenshot(path=str(screenshot_dir(tmp_path_factory) / "command-palette.png"))
    # no notebook open: Promote opens the Runs panel to pick a run
    palette.locator('.lm-CommandPalette-item[data-command="mlnb:promote"]').click()
    expect(page.locator("#mlnb-runs-panel .mlnb-run").first).to_be_visible()


def test_a_promotion_from_jupyterlab_names_a_person(lab_server: LabServer, lab_project: LabProject) -> None:
    third = lab_project.ids[2]
    req = urllib.request.Request(f"{lab_server.url}/mlnb/api/promote", method="POST",
                                 data=json.dumps({"run_id": third, "note": "names a person"}).encode(),
                                 headers={"Authorization": f"token {lab_server.token}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
    record = lab_project.audit()[-1]
    # Jupyter's token login knows no person: the OS user running the server, not a random anonymous id
    assert record["action"] == "promote" and record["user"] == getpass.getuser()
    assert lab_project.alias().description == "names a person"  # the note, on the version in MLflow


AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def nobody_can_run_the_venv() -> bool:
    if os.getuid() != 0 or not shutil.which("setpriv"):
        return False
    # through a shell, as scripts/lab runs it (setpriv's own exec may still pass directories nobody can't)
    probe = subprocess.run([*AS_NOBODY, "sh", "-c", f"exec '{sys.executable}' -c 'import jupyterlab'"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not nobody_can_run_the_venv(),
                    reason="needs root, and a venv whose interpreter the user nobody may run")
def test_scripts_lab_runs_jupyter_as_a_normal_user_without_allow_root() -> None:
    """The lab fixture proves the start as root (--allow-root added); here the same script runs as
    ``nobody``: Jupyter starts, and without --allow-root."""
    home = Path(tempfile.mkdtemp(prefix="mlnb-lab-user-"))
    try:
        (home / "project").mkdir()
        shutil.copy(REPO / "pipeline.yaml", home / "project" / "pipeline.yaml")
        lab_env(home)  # the server's runtime and user directories, made here so that nobody owns them
        subprocess.run(["chown", "-R", "65534:65534", str(home)], check=True)
        home.chmod(0o755)
        env = {**os.environ, **TELEMETRY_OFF, "HOME": str(home), "IPYTHONDIR": str(home / "ipython")}
        env.pop("PYTHONPATH", None)  # the venv's installed mlnb, as `make lab` runs it
        proc, server = start_lab(home / "project", home, env,
                                 prefix=AS_NOBODY)
        try:
            wait_for(proc, server)
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
            assert b"--allow-root" not in cmdline and os.stat(f"/proc/{proc.pid}").st_uid == 65534
            status, body = http("GET", f"{server.url}/api/contents/", server.token)
            assert status == 200 and "pipeline.yaml" in body, body
        finally:
            stop(proc, server.url, server.token)
    finally:
        shutil.rmtree(home, ignore_errors=True)
