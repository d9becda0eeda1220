"""The Pipeline panel in a real browser over a real project (the lab fixture's, given a small real
pipeline): every task shown with why it is outdated; Build from the panel with the task states
moving live (pushed by the server, no refresh); a build from the terminal shown live too, with the
panel's build refused meanwhile and the other way round; Stop interrupting a running build.
A screenshot of each state is saved (``$MLNB_SCREENSHOTS``, else ``<basetemp>/screenshots``).

The tests share one server and project and run in file order."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import MLNB, REPO, run_mlnb
from tests.e2e.conftest import CHROMIUM, LabProject, LabServer
from tests.pipeline_fixtures import TASKS, set_env, write_pipeline

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the "
                "browser tests", allow_module_level=True)

from playwright.sync_api import Page, expect

from tests.e2e.test_promote_ui import open_lab

pytestmark = pytest.mark.integration

PANEL = "#mlnb-pipeline-panel"


@pytest.fixture(scope="module")
def project(lab_project: LabProject) -> Path:
    """The lab's project, now with the three-task pipeline (its MLflow experiment kept)."""
    root = lab_project.root
    mlflow = yaml.safe_load((root / "env.yaml").read_text())["mlflow"]
    return write_pipeline(root, mlflow=mlflow)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = Path(os.environ.get("MLNB_SCREENSHOTS") or tmp_path_factory.getbasetemp() / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def open_pipeline(page: Page, server: LabServer) -> None:
    open_lab(page, server)
    page.locator(f'.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="{PANEL[1:]}"]').click()
    expect(page.locator(PANEL)).to_be_visible()
    expect(page.locator(f"{PANEL} .mlnb-task")).to_have_count(len(TASKS))


def task(page: Page, name: str):
    return page.locator(f'{PANEL} .mlnb-task[data-task="{name}"]')


def status(page: Page):
    return page.locator(f"{PANEL} .mlnb-pipeline-status")


def shot(page: Page, shots: Path, name: str) -> None:
    page.locator(PANEL).screenshot(path=str(shots / f"pipeline-{name}.png"))


def test_the_panel_shows_every_task_and_why_it_is_outdated(page: Page, lab_server: LabServer, project: Path,
                                                           shots: Path) -> None:
    open_pipeline(page, lab_server)
    for name in TASKS:
        expect(task(page, name)).to_have_attribute("data-state", "outdated")
    expect(task(page, "prep").locator(".mlnb-task-detail")).to_have_text(
        "outdated (2): product missing: products/prep/prep.ipynb")
    expect(page.locator(f"{PANEL} .mlnb-pipeline-edge")).to_have_count(2)
    expect(page.locator(f'{PANEL} .mlnb-why-task[data-task="report"]')).to_contain_text(
        "product missing: products/report/out.txt")
    shot(page, shots, "outdated")
    # a task that never ran opens its source notebook
    task(page, "fit").click()
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="fit.ipynb")).to_be_visible()


def test_build_from_the_panel_moves_live_and_a_terminal_build_is_refused_meanwhile(
        page: Page, lab_server: LabServer, project: Path, shots: Path) -> None:
    gate = project / "let-fit-go"
    set_env(project, wait_for={"fit": gate})
    open_pipeline(page, lab_server)
    page.locator(f"{PANEL} .mlnb-pipeline-build").click()
    message = page.locator(f"{PANEL} .mlnb-pipeline-message")
    expect(message).to_have_text(re.compile(r"Started mlnb build \(pid \d+\)\."))
    pid = int(re.search(r"pid (\d+)", message.inner_text()).group(1))
    # pushed by the server: prep done, fit running in its second cell of three
    expect(task(page, "prep")).to_have_attribute("data-state", "up to date", timeout=60_000)
    expect(task(page, "fit")).to_have_attribute("data-state", "running")
    expect(task(page, "fit").locator(".mlnb-task-detail")).to_have_text("running: cell 2 of 3")
    expect(status(page)).to_have_text(f"Build running (from JupyterLab, pid {pid}): 1 task done, running fit")
    expect(page.locator(f"{PANEL} .mlnb-pipeline-build")).to_be_disabled()
    expect(page.locator(f"{PANEL} .mlnb-pipeline-stop")).to_be_enabled()
    shot(page, shots, "running")

    refused = run_mlnb(project, "build")  # the same project from a terminal
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert refused.stderr.strip() == (f"mlnb: error: .mlnb/build.lock: a build is already running in this "
                                      f"project (pid {pid}); wait for it to finish or stop it")

    gate.touch()
    for name in TASKS:
        expect(task(page, name)).to_have_attribute("data-state", "up to date", timeout=60_000)
    expect(status(page)).to_have_text("Last build succeeded (from JupyterLab).")
    expect(page.locator(f"{PANEL} .mlnb-pipeline-build")).to_be_enabled()
    expect(page.locator(f"{PANEL} .mlnb-why-task")).to_have_count(0)
    shot(page, shots, "built")
    gate.unlink()
    # an executed task opens its executed notebook
    task(page, "report").click()
    expect(page.locator(".jp-NotebookPanel:visible .jp-OutputArea-output", has_text="report done")).to_be_visible()


def test_a_terminal_build_shows_live_and_the_panel_build_is_refused(page: Page, lab_server: LabServer,
                                                                   project: Path, shots: Path) -> None:
    gate = project / "let-report-go"
    set_env(project, wait_for={"report": gate})
    open_pipeline(page, lab_server)
    expect(task(page, "report")).to_have_attribute("data-state", "outdated")  # its params changed
    terminal = subprocess.Popen([*MLNB, "build"], cwd=project, env={**os.environ, "PYTHONPATH": str(REPO)},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        expect(task(page, "report")).to_have_attribute("data-state", "running", timeout=60_000)
        expect(status(page)).to_contain_text(f"Build running (from a terminal, pid {terminal.pid})")
        # the palette's mlnb:build while it runs: refused, in one line naming the terminal's build
        page.keyboard.press("Control+Shift+C")
        page.locator(".lm-CommandPalette-input").fill("Build the mlnb Pipeline")
        page.keyboard.press("Enter")
        expect(page.locator(f"{PANEL} .mlnb-pipeline-message")).to_have_text(
            f".mlnb/build.lock: a build is already running in this project (pid {terminal.pid}); "
            "wait for it to finish or stop it")
        shot(page, shots, "refused")
        gate.touch()
        out, err = terminal.communicate(timeout=120)
    finally:
        if terminal.poll() is None:
            terminal.kill()
            terminal.wait()
    assert terminal.returncode == 0, out + err
    expect(task(page, "report")).to_have_attribute("data-state", "up to date")
    expect(status(page)).to_have_text("Last build succeeded (from a terminal).")
    gate.unlink()


def test_stop_interrupts_a_running_build(page: Page, lab_server: LabServer, project: Path, shots: Path) -> None:
    set_env(project, wait_for={"fit": project / "never"})
    open_pipeline(page, lab_server)
    page.locator(f"{PANEL} .mlnb-pipeline-force").click()
    expect(task(page, "fit")).to_have_attribute("data-state", "running", timeout=60_000)
    page.locator(f"{PANEL} .mlnb-pipeline-stop").click()
    expect(page.locator(f"{PANEL} .mlnb-pipeline-message")).to_contain_text("SIGINT sent to pid")
    expect(status(page)).to_have_text("Last build was stopped.", timeout=60_000)
    expect(task(page, "fit")).to_have_attribute("data-state", "failed")
    expect(task(page, "fit").locator(".mlnb-task-detail")).to_have_text(
        "failed at cell 1: KeyboardInterrupt")
    expect(task(page, "report")).to_have_attribute("data-state", "outdated")
    expect(page.locator(f"{PANEL} .mlnb-pipeline-build")).to_be_enabled()
    shot(page, shots, "stopped")
    log = (project / ".mlnb/build/build.log").read_text()
    assert "mlnb: interrupted (Ctrl-C)" in log, log[-2000:]
    set_env(project)
