"""The Runs panel in a real browser over a real JupyterLab, MLflow store and CLI: builds that end
elsewhere appear by themselves, a retrain with C=0.5 shows C differing from the champion, a gate's
"not promotable" is not a crash, the run detail shows the evaluate task's plots, the promotion
policy's requirements and the lineage chain, two runs compare side by side, a forced promotion is
marked forced, and a promotion from the CLI shows without pressing Refresh. Screenshots of each state go to $MLNB_SCREENSHOTS (else <basetemp>/screenshots).

The tests share one project and server (module fixtures) and run in file order."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_mlnb
from tests.e2e.conftest import CHROMIUM, LabProject, LabServer

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the "
                "browser tests", allow_module_level=True)

from playwright.sync_api import Page, expect

pytestmark = pytest.mark.integration

# Two builds that end while the panel is open: a retrain with C=0.5 (and one more metric), and a
# healthy build the gate turned down; both log the evaluate task's plots.
LATER = [{"f1": 0.97, "params": {"train.C": "0.5"}, "plots": True, "metrics": {"accuracy": 0.96}},
         {"f1": 0.86, "verdict": "not_promotable", "plots": True,
          "gate_reason": "candidate F1 0.8600 < champion F1 0.9200 + gate.min_delta 0.0200"}]
ADD = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.registry_fixtures import fake_builds
print(json.dumps(fake_builds(Path(sys.argv[2]), json.loads(sys.argv[3]))))
"""
LATER_IDS: list[str] = []  # filled by the first test


def screenshot(node, name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    shots = Path(os.environ.get("MLNB_SCREENSHOTS") or tmp_path_factory.getbasetemp() / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / f"{name}.png"
    node.screenshot(path=str(shot))
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 1000
    return shot


def open_runs(page: Page, server: LabServer) -> None:
    page.goto(f"{server.url}/lab?reset&token={server.token}")
    expect(page.locator("#jp-main-dock-panel")).to_be_visible(timeout=45_000)
    page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="mlnb-runs-panel"]').click()
    expect(page.locator("#mlnb-runs-panel .mlnb-run").first).to_be_visible()


def row(page: Page, run_id: str):
    return page.locator(f'#mlnb-runs-panel .mlnb-run[data-run-id="{run_id}"]')


def expect_plot_loaded(page: Page, figure) -> None:
    img = figure.locator("img")
    expect(img).to_have_attribute("src", re.compile(r"^blob:"))
    page.wait_for_function("img => img.complete && img.naturalWidth > 100", arg=img.element_handle())


def test_builds_that_end_elsewhere_appear_and_show_what_differs(page: Page, lab_server: LabServer,
                                                               lab_project: LabProject,
                                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    _, champion, _, gate_failed = lab_project.ids
    open_runs(page, lab_server)
    rows = page.locator("#mlnb-runs-panel .mlnb-run")
    expect(rows).to_have_count(4)

    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    added = subprocess.run([sys.executable, "-c", ADD, str(REPO), str(lab_project.root), json.dumps(LATER)],
                           env=env, capture_output=True, text=True, timeout=300)
    assert added.returncode == 0, added.stderr[-3000:]
    LATER_IDS.extend(json.loads(added.stdout.strip().splitlines()[-1]))
    retrain, turned_down = LATER_IDS

    expect(rows).to_have_count(6)  # nobody pressed Refresh: the panel polled the change token
    expect(rows.first).to_have_attribute("data-run-id", turned_down)
    diff = row(page, retrain).locator(".mlnb-param-diff")
    expect(diff).to_have_count(1)
    expect(diff).to_have_attribute("data-param", "train.C")
    expect(diff).to_have_text("train.C=0.5")
    expect(diff).to_have_attribute("title", "differs from the champion's 1.0")
    expect(row(page, champion).locator(".mlnb-param-diff")).to_have_count(0)
    expect(row(page, retrain).locator('.mlnb-run-metric[data-metric="accuracy"]')).to_have_text("accuracy 0.9600")
    expect(row(page, retrain).locator('.mlnb-run-metric[data-metric="f1"]')).to_have_text("f1 0.9700")
    expect(row(page, champion).locator('.mlnb-run-metric[data-metric="accuracy"]')).to_have_count(0)

    expect(row(page, turned_down).locator(".mlnb-badge-verdict-not-promotable")).to_have_text("not promotable")
    expect(row(page, turned_down).locator(".mlnb-badge-status-failed")).to_have_count(0)
    expect(row(page, gate_failed).locator(".mlnb-badge-verdict-failed")).to_have_text("gate failed")
    expect(row(page, retrain).locator(".mlnb-badge-verdict-promotable")).to_have_text("promotable")
    screenshot(page.locator("#mlnb-runs-panel"), "runs-panel", tmp_path_factory)


def test_run_detail_shows_params_metrics_and_plots(page: Page, lab_server: LabServer,
                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    retrain, _ = LATER_IDS
    open_runs(page, lab_server)
    row(page, retrain).locator(".mlnb-run-id").click()
    view = page.locator(f'.mlnb-run-detail[data-run-id="{retrain}"]')
    expect(view).to_be_visible()
    expect(view.locator('.mlnb-view-params-diff tr[data-param="train.C"] td')).to_have_text(["train.C", "0.5", "1.0"])
    expect(view.locator('.mlnb-view-metrics tr[data-metric="f1"] td')).to_have_text(
        ["f1", "0.9700", "0.9200", "+0.0500"])
    expect(view.locator(".mlnb-plot")).to_have_count(2)
    for name in ("roc.png", "confusion_matrix.png"):
        expect_plot_loaded(page, view.locator(f'.mlnb-plot[data-plot="{name}"]'))
    screenshot(view, "run-detail", tmp_path_factory)


def test_run_detail_shows_promotion_requirements_and_lineage(page: Page, lab_server: LabServer,
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    retrain, _ = LATER_IDS
    open_runs(page, lab_server)
    row(page, retrain).locator(".mlnb-run-id").click()
    view = page.locator(f'.mlnb-run-detail[data-run-id="{retrain}"]')
    expect(view).to_be_visible()
    # the test project's policy requires the gate only: DVC and nbval are listed, not held, not required
    requirements = view.locator(".mlnb-requirement")
    expect(requirements.locator(".mlnb-requirement-name")).to_have_text(
        ["gate promotable", "committed gate settings", "clean git tree", "dvc.lock recorded and pushed",
         "nbval references passed", "approvals"])
    gate = view.locator('.mlnb-requirement.mlnb-mod-held[data-requirement="gate"]')
    expect(gate.locator(".mlnb-requirement-detail")).to_contain_text("the gate says promotable")
    dvc = view.locator('.mlnb-requirement.mlnb-mod-not-held[data-requirement="dvc"]')
    expect(dvc.locator(".mlnb-requirement-state")).to_have_text("not held (not required)")
    expect(dvc.locator(".mlnb-requirement-detail")).to_have_text("the project does not use DVC (no .dvc/ and dvc.yaml)")
    expect(view.locator(".mlnb-requirements-summary")).to_contain_text("a plain promote is accepted")

    chain = view.locator(".mlnb-lineage")  # fetched after the detail drew
    build = chain.locator('.mlnb-lineage-row[data-link="build"]')
    expect(build.locator(".mlnb-lineage-label")).to_have_text("build run")
    expect(build.locator(".mlnb-lineage-hash")).to_have_text(retrain[:12])
    expect(build.locator(".mlnb-lineage-hash")).to_have_attribute("title", retrain)
    git = chain.locator('.mlnb-lineage-row[data-link="git"]')
    expect(git.locator(".mlnb-lineage-label")).to_have_text("git commit")
    expect(git.locator(".mlnb-lineage-hash")).to_have_attribute("title", "0" * 40)  # fake_builds' first commit
    expect(chain.locator('.mlnb-lineage-row[data-link="model"] .mlnb-lineage-value')).to_contain_text("version")
    expect(chain.locator('.mlnb-lineage-row[data-link="notebook"] .mlnb-lineage-label')).to_have_text(
        ["notebook evaluate", "notebook export", "notebook train"])
    view.locator(".mlnb-lineage-verify-button").click()
    expect(view.locator('.mlnb-lineage-check[data-link="model files"]')).to_have_count(1)
    screenshot(view.locator(".mlnb-view-section:has(.mlnb-requirements)"), "run-detail-requirements",
               tmp_path_factory)
    screenshot(view.locator(".mlnb-lineage-section"), "run-detail-lineage", tmp_path_factory)


def test_compare_two_runs_side_by_side(page: Page, lab_server: LabServer,
                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    retrain, turned_down = LATER_IDS
    open_runs(page, lab_server)
    compare = page.locator("#mlnb-runs-panel .mlnb-compare-button")
    expect(compare).to_be_disabled()
    row(page, turned_down).locator(".mlnb-compare-input").check()
    row(page, retrain).locator(".mlnb-compare-input").check()
    expect(compare).to_be_enabled()
    compare.click()

    view = page.locator(f'.mlnb-compare[data-a="{turned_down}"][data-b="{retrain}"]')
    expect(view).to_be_visible()
    differing = view.locator(".mlnb-compare-params tr.mlnb-mod-differs")
    expect(differing).to_have_count(1)
    expect(differing.locator("td")).to_have_text(["train.C", "1.0", "0.5"])
    expect(view.locator('.mlnb-compare-metrics tr[data-metric="f1"] td')).to_have_text(
        ["f1", "0.8600", "0.9700", "+0.1100"])
    expect(view.locator('.mlnb-compare-metrics tr[data-metric="f1"]')).to_have_class(
        re.compile("mlnb-mod-differs"))
    roc = view.locator('.mlnb-compare-plot-row[data-plot="roc.png"] .mlnb-plot')
    expect(roc).to_have_count(2)
    for i in range(2):
        expect_plot_loaded(page, roc.nth(i))
    screenshot(view, "compare", tmp_path_factory)


def test_forced_promotion_is_marked_forced(page: Page, lab_server: LabServer, lab_project: LabProject,
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    _, turned_down = LATER_IDS
    open_runs(page, lab_server)
    row(page, turned_down).get_by_role("button", name="Promote", exact=True).click()
    body = page.locator(".jp-Dialog .mlnb-promote-dialog")
    expect(body).to_have_attribute("data-run-id", turned_down)
    expect(body.locator(".mlnb-refusal")).to_be_visible()
    body.locator(".mlnb-force-input").check()
    body.locator(".mlnb-note-input").fill("e2e: ship it anyway")
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()

    expect(page.locator(".Toastify__toast--success")).to_contain_text("is now the champion")
    expect(row(page, turned_down).locator(".mlnb-badge-champion")).to_have_count(1)
    forced = row(page, turned_down).locator(".mlnb-badge-forced")
    expect(forced).to_have_text("forced")
    expect(forced).to_have_attribute("title", re.compile("e2e: ship it anyway"))
    expect(page.locator("#mlnb-runs-panel .mlnb-badge-forced")).to_have_count(1)
    last = lab_project.audit()[-1]
    assert (last["action"], last["run_id"], last["forced"]) == ("promote", turned_down, True)
    assert lab_project.build_of("champion") == turned_down
    screenshot(page.locator("#mlnb-runs-panel"), "runs-panel-forced", tmp_path_factory)


def test_a_promotion_from_the_cli_shows_without_refresh_then_rollback(page: Page, lab_server: LabServer,
                                                                      lab_project: LabProject,
                                                                      tmp_path_factory) -> None:
    retrain, turned_down = LATER_IDS
    open_runs(page, lab_server)
    expect(row(page, turned_down).locator(".mlnb-badge-champion")).to_have_count(1)

    promoted = run_mlnb(lab_project.root, "promote", retrain, "--note", "from a terminal")
    assert promoted.returncode == 0, promoted.stderr
    expect(row(page, retrain).locator(".mlnb-badge-champion")).to_have_count(1)  # polled, not refreshed
    expect(row(page, turned_down).locator(".mlnb-badge-previous")).to_have_count(1)
    expect(row(page, turned_down).locator(".mlnb-badge-forced")).to_have_count(1)  # still forced, once
    # the diffs are now against the new champion's C=0.5: every other build differs
    expect(row(page, retrain).locator(".mlnb-param-diff")).to_have_count(0)
    expect(page.locator('#mlnb-runs-panel .mlnb-param-diff[data-param="train.C"]')).to_have_text(["train.C=1.0"] * 5)
    screenshot(page.locator("#mlnb-runs-panel"), "runs-panel-after-cli-promote", tmp_path_factory)

    page.locator("#mlnb-runs-panel .mlnb-rollback-button").click()
    page.locator(".jp-Dialog .mlnb-note-input").fill("e2e: back")
    page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept").click()
    expect(page.locator(".Toastify__toast--success")).to_contain_text("rolled back")
    expect(row(page, turned_down).locator(".mlnb-badge-champion")).to_have_count(1)
    expect(row(page, retrain).locator(".mlnb-badge-previous")).to_have_count(1)
    assert lab_project.build_of("champion") == turned_down
    screenshot(page.locator("#mlnb-runs-panel"), "runs-panel-after-rollback", tmp_path_factory)
