"""JupyterLab as `make lab` starts it (scripts/lab, the venv's installed configuration): the file
browser lists the project, a notebook opens, the page logs no console error and shows no news toast."""

from __future__ import annotations

import getpass
import json
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM, LabProject, LabServer, http, screenshot_dir

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
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="plain.ipynb")
    expect(tab).not_to_have_class("jp-mod-dirty")
    page.screenshot(path=str(shots / "lab-notebook-open.png"))

    expect(page.locator(".Toastify__toast")).to_have_count(0)  # no "Jupyter news?" question, no update nag
    assert errors == [], "console errors on page load:\n" + "\n".join(errors)


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
