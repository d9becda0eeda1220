"""The mlnb JupyterLab extension in a real browser: the Runs panel, promote (with deltas, a note and
a refusal), rollback, and the "Promote this run" notebook toolbar button. Everything is real: the
Jupyter server with mlnb's server extension, MLflow's registry in SQLite, headless Chromium.

The tests share one project and server (module fixtures) and run in file order: each states the
registry it starts from and leaves it as the next one expects."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM, LabProject, LabServer

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the "
                "browser tests", allow_module_level=True)

from playwright.sync_api import Page, expect

pytestmark = pytest.mark.integration


def open_lab(page: Page, server: LabServer, path: str = "") -> None:
    page.goto(f"{server.url}/lab{path}?reset&token={server.token}")
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=45_000)


def open_runs(page: Page) -> None:
    page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="mlnb-runs-panel"]').click()
    expect(page.locator("#mlnb-runs-panel")).to_be_visible()
    expect(page.locator("#mlnb-runs-panel .mlnb-run").first).to_be_visible()


def row(page: Page, run_id: str):
    return page.locator(f'#mlnb-runs-panel .mlnb-run[data-run-id="{run_id}"]')


def dialog(page: Page):
    return page.locator(".jp-Dialog")


def toast(page: Page, kind: str):
    return page.locator(f".Toastify__toast--{kind}")


def test_runs_panel_lists_builds_and_promotes(page: Page, lab_server: LabServer, lab_project: LabProject,
                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    first, second, third, failed = lab_project.ids
    champion = lab_project.build_of("champion")
    assert champion == second, "setup: build 2 is the champion"
    open_lab(page, lab_server)
    open_runs(page)

    rows = page.locator("#mlnb-runs-panel .mlnb-run")
    expect(rows).to_have_count(4)
    expect(rows.first).to_have_attribute("data-run-id", failed)  # newest first
    expect(row(page, second).locator(".mlnb-badge-champion")).to_have_count(1)
    expect(page.locator("#mlnb-runs-panel .mlnb-badge-champion")).to_have_count(1)
    expect(row(page, first).locator(".mlnb-badge-previous")).to_have_count(1)
    expect(row(page, second).get_by_role("button", name="Promote", exact=True)).to_have_count(0)
    expect(row(page, failed).locator(".mlnb-badge-verdict-failed")).to_have_text("gate failed")
    expect(row(page, failed).get_by_role("button", name="Promote", exact=True)).to_have_count(1)
    expect(row(page, third).locator(".mlnb-badge-verdict-promotable")).to_have_text("promotable")
    expect(row(page, third).locator(".mlnb-run-id")).to_have_text(third[:8])
    expect(row(page, third).locator('.mlnb-run-metric[data-metric="f1"]')).to_have_text("f1 0.9500")
    expect(row(page, third).locator('.mlnb-run-metric[data-metric="roc_auc"]')).to_have_text("roc_auc 0.9800")
    expect(row(page, third).locator(".mlnb-run-commit")).to_have_text("0000000")

    row(page, third).get_by_role("button", name="Promote", exact=True).click()
    body = dialog(page).locator(".mlnb-promote-dialog")
    expect(body).to_have_attribute("data-run-id", third)
    f1 = body.locator('.mlnb-delta-row[data-metric="f1"] td')
    expect(f1).to_have_text(["f1", "0.9500", "0.9200", "+0.0300"])
    expect(body.locator('.mlnb-delta-row[data-metric="roc_auc"] .mlnb-delta')).to_have_text("+0.0200")
    expect(body.locator(".mlnb-refusal")).to_have_count(0)
    expect(body.locator(".mlnb-force-input")).to_have_count(0)
    note = "e2e: F1 up three points"
    body.locator(".mlnb-note-input").fill(note)
    dialog(page).locator(".jp-Dialog-button.jp-mod-accept").click()

    expect(toast(page, "success")).to_contain_text(re.compile(r"version \d+ is now the champion"))
    expect(row(page, third).locator(".mlnb-badge-champion")).to_have_count(1)
    expect(row(page, second).locator(".mlnb-badge-champion")).to_have_count(0)
    expect(row(page, second).locator(".mlnb-badge-previous")).to_have_count(1)
    expect(row(page, second).get_by_role("button", name="Promote", exact=True)).to_have_count(1)

    shot = tmp_path_factory.getbasetemp() / "screenshots" / "runs-panel-after-promote.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.locator("#mlnb-runs-panel").screenshot(path=str(shot))  # for the reviewer: the panel, badges moved
    print(f"screenshot of the Runs panel: {shot}")
    assert shot.stat().st_size > 1000

    assert lab_project.build_of("champion") == third  # the alias really moved, in MLflow
    assert lab_project.build_of("previous") == second
    last = lab_project.audit()[-1]
    assert (last["action"], last["run_id"], last["note"]) == ("promote", third, note)


def test_gate_failed_run_is_refused_without_force(page: Page, lab_server: LabServer,
                                                  lab_project: LabProject) -> None:
    failed = lab_project.ids[3]
    before = lab_project.alias("champion").version
    audit_lines = len(lab_project.audit())
    open_lab(page, lab_server)
    open_runs(page)

    row(page, failed).get_by_role("button", name="Promote", exact=True).click()
    body = dialog(page).locator(".mlnb-promote-dialog")
    expect(body).to_have_attribute("data-run-id", failed)
    expect(body.locator(".mlnb-refusal")).to_contain_text("the gate failed: candidate F1 0.8000")
    expect(body.locator(".mlnb-force-input")).not_to_be_checked()
    body.locator(".mlnb-note-input").fill("e2e: try without force")
    dialog(page).locator(".jp-Dialog-button.jp-mod-accept").click()

    expect(toast(page, "error")).to_contain_text("not promoted: the gate failed")
    expect(toast(page, "success")).to_have_count(0)
    assert lab_project.alias("champion").version == before  # nothing moved
    refused = lab_project.audit()[audit_lines:]
    assert [(r["action"], r["run_id"]) for r in refused] == [("refused", failed)]
    expect(row(page, failed).locator(".mlnb-badge-champion")).to_have_count(0)


def test_rollback_moves_the_champion_back(page: Page, lab_server: LabServer, lab_project: LabProject) -> None:
    champion, previous = lab_project.build_of("champion"), lab_project.build_of("previous")
    open_lab(page, lab_server)
    open_runs(page)
    expect(row(page, champion).locator(".mlnb-badge-champion")).to_have_count(1)

    page.locator("#mlnb-runs-panel .mlnb-rollback-button").click()
    dialog(page).locator(".mlnb-note-input").fill("e2e: roll back")
    dialog(page).locator(".jp-Dialog-button.jp-mod-accept").click()

    expect(toast(page, "success")).to_contain_text("rolled back")
    expect(row(page, previous).locator(".mlnb-badge-champion")).to_have_count(1)
    expect(row(page, champion).locator(".mlnb-badge-previous")).to_have_count(1)
    assert (lab_project.build_of("champion"), lab_project.build_of("previous")) == (previous, champion)
    last = lab_project.audit()[-1]
    assert (last["action"], last["note"]) == ("rollback", "e2e: roll back")


def test_notebook_toolbar_button_only_on_build_notebooks(page: Page, lab_server: LabServer,
                                                         lab_project: LabProject) -> None:
    run_id = lab_project.ids[2]
    open_lab(page, lab_server, "/tree/products/train/train.ipynb")
    notebook = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    expect(notebook.locator(".jp-Notebook")).to_be_visible(timeout=30_000)
    button = notebook.locator(".jp-NotebookPanel-toolbar").get_by_role("button", name="Promote this run")
    expect(button).to_be_visible()
    button.click()
    expect(dialog(page).locator(".mlnb-promote-dialog")).to_have_attribute("data-run-id", run_id)
    dialog(page).locator(".jp-Dialog-button.jp-mod-reject").click()
    expect(dialog(page)).to_have_count(0)

    open_lab(page, lab_server, "/tree/notebooks/plain.ipynb")
    plain = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    expect(plain.locator(".jp-Notebook")).to_be_visible(timeout=30_000)
    expect(plain.locator(".jp-NotebookPanel-toolbar .jp-Toolbar-item").first).to_be_visible()
    expect(plain.locator(".jp-NotebookPanel-toolbar").get_by_role("button", name="Promote this run")).to_be_hidden()
