"""The Runs panel's Debug button in a real browser: a real `mlnb build` fails in the lab's project,
the panel shows the failing task and cell, Debug opens the debug notebook `mlnb debug` writes (as
saved, not modified), `mlnb debug` prints this server's URL for it, and once a later build runs the
task again the old failure is no longer offered (the API answers 409)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import run_mlnb, write_notebook
from tests.e2e.conftest import CHROMIUM, LabProject, LabServer, http, screenshot_dir

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium) to run the "
                "browser tests", allow_module_level=True)

from playwright.sync_api import Page, expect

from tests.e2e.test_promote_ui import open_lab, open_runs

pytestmark = pytest.mark.integration


def post_json(url: str, token: str, body: dict) -> tuple[int, str]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_failed_build_offers_debug_which_opens_the_debug_notebook(page: Page, lab_server: LabServer,
                                                                   lab_project: LabProject,
                                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    root = lab_project.root
    write_notebook(root / "notebooks/t.ipynb", [
        ("params", "upstream = None\nproduct = None"),
        ("code", "numbers = [1, 2, 3]"),
        ("code", "raise ValueError(f'no good: {sum(numbers)}')"),
        ("code", "from pathlib import Path\nPath(product['out']).write_text('ok')"),
    ])
    (root / "pipeline.yaml").write_text(
        "tasks:\n  - source: notebooks/t.ipynb\n    product: {nb: products/t/t.ipynb, out: products/t/out.txt}\n")
    built = run_mlnb(root, "build", "--no-dvc")
    assert built.returncode == 1, built.stdout + built.stderr

    status, body = http("POST", f"{lab_server.url}/mlnb/api/debug", lab_server.token)  # no XSRF, no body
    assert status in (400, 403), body

    open_lab(page, lab_server)
    open_runs(page)
    newest = page.locator("#mlnb-runs-panel .mlnb-run").first
    expect(newest.locator(".mlnb-run-failure-text")).to_contain_text("t: cell 2")
    expect(newest.locator(".mlnb-run-failure-text")).to_contain_text("ValueError: no good: 6")
    expect(page.locator("#mlnb-runs-panel .mlnb-debug-button")).to_have_count(1)  # only the failed build
    newest.locator(".mlnb-debug-button").click()
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="t.debug.ipynb")).to_be_visible(
        timeout=20_000)
    # t failed in its first second: the debug notebook re-runs its cells (no snapshot needed)
    expect(page.locator(".jp-NotebookPanel:visible .jp-Cell").nth(1)).to_contain_text("they run again")
    nb = json.loads((root / "products/_failed/t/t.debug.ipynb").read_text())
    ids = [c["id"] for c in nb["cells"]]
    assert ids[:2] == ["mlnb-debug-intro", "mlnb-debug-setup"] and ids[-2:] == ["c2", "c3"]
    # opened as saved: the kernel it starts does not rewrite its metadata (no "modified" dot on the tab)
    notebook = page.locator(".jp-NotebookPanel:visible")
    expect(notebook.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=30_000)
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="t.debug.ipynb")
    expect(tab).not_to_have_class(re.compile(r"\bjp-mod-dirty\b"))
    page.screenshot(path=str(screenshot_dir(tmp_path_factory) / "debug-notebook.png"))

    # the CLI finds this server (its runtime file), whatever its port
    out = run_mlnb(root, "debug", "t", env={"JUPYTER_RUNTIME_DIR": str(lab_server.runtime_dir)})
    assert out.returncode == 0, out.stderr
    port = lab_server.url.rsplit(":", 1)[1]
    assert re.search(rf"http://\S+:{port}/lab/tree/products/_failed/t/t\.debug\.ipynb\?token={lab_server.token}",
                     out.stdout), out.stdout

    failed_run = newest.get_attribute("data-run-id")
    write_notebook(root / "notebooks/t.ipynb", [
        ("params", "upstream = None\nproduct = None"),
        ("code", "numbers = [1, 2, 3]"),
        ("code", "total = sum(numbers)"),
        ("code", "from pathlib import Path\nPath(product['out']).write_text('ok')"),
    ])
    built = run_mlnb(root, "build", "--no-dvc")
    assert built.returncode == 0, built.stdout + built.stderr
    status, body = post_json(f"{lab_server.url}/mlnb/api/debug", lab_server.token, {"task": "t", "run_id": failed_run})
    assert status == 409 and "no longer current" in json.loads(body)["error"], body
    open_lab(page, lab_server)
    open_runs(page)
    old = page.locator(f'#mlnb-runs-panel .mlnb-run[data-run-id="{failed_run}"]')
    expect(old.locator(".mlnb-run-failure-text")).to_contain_text("ValueError: no good: 6")
    expect(page.locator("#mlnb-runs-panel .mlnb-debug-button")).to_have_count(0)
