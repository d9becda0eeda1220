"""The Runs panel with 200 builds in the store: how long the list takes to load.

A throwaway project gets 200 fake builds (the test fixtures' real MLflow runs: params, five metrics,
a registered version for each build whose gate passed, one in ten turned down by its gate) and two
promotions. Then, each as the median of ``--rounds``:

1. in-process: ``mlnb.services.runs.list_runs`` for 20, 50 (what the panel asks for) and 200 runs, and
   ``mlnb.services.runs.changes`` (what the panel polls every 3 s while visible);
2. over HTTP, through a real ``jupyter lab`` with mlnb's server extension: ``GET runs?limit=50``,
   ``GET runs?limit=200``, ``GET runs/changes``;
3. in headless Chromium (``/usr/bin/chromium``): click the Runs tab -> all 50 rows drawn, and a
   poll that finds nothing changed (no list reload).

Usage: .venv/bin/python benchmarks/runs_panel.py [--builds 200] [--rounds 5] [--no-browser] [--project DIR]
(``--project DIR``: make the project there, or reuse the one a previous run left there: making 200
builds takes minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.registry_fixtures import fake_builds, make_registry_project  # noqa: E402

TELEMETRY_OFF = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "PLOOMBER_STATS_ENABLED": "false",
                 "PLOOMBER_VERSION_CHECK_DISABLED": "true", "DVC_NO_ANALYTICS": "1"}


def median_ms(fn, rounds: int) -> float:
    fn()  # warm up (imports, connections)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def specs(n: int) -> list[dict]:
    out = []
    for i in range(n):
        f1 = 0.85 + (i % 40) / 400
        spec = {"f1": f1, "roc_auc": min(1.0, f1 + 0.03),
                "metrics": {"accuracy": f1 + 0.01, "precision": f1 - 0.01, "recall": f1 + 0.02},
                "params": {"train.C": str([1.0, 0.5, 2.0, 0.1][i % 4])}}
        if i % 10 == 9:
            spec["verdict"] = "not_promotable"
        out.append(spec)
    return out


def start_lab(root: Path, home: Path) -> tuple[subprocess.Popen, str, str]:
    from tests.e2e.conftest import free_port

    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, **TELEMETRY_OFF, "PYTHONPATH": str(REPO), "MLNB_PROJECT_ROOT": str(root),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces")}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = (home / "jupyter.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
                             "--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1", "--allow-root",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
                            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            get(url, token, "/api/status")
            return proc, url, token
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"jupyter lab did not start; see {home / 'jupyter.log'}")


def get(url: str, token: str, path: str) -> bytes:
    req = urllib.request.Request(url + path, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.read()


def browser(url: str, token: str, rounds: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    out: dict[str, list[float]] = {"page_load_to_panel_ready_ms": [], "open_panel_to_50_rows_ms": [],
                                   "unchanged_poll_ms": []}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        try:
            for _ in range(rounds):
                context = b.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                start = time.perf_counter()
                page.goto(f"{url}/lab?reset&token={token}")
                tab = page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="mlnb-runs-panel"]')
                tab.wait_for(timeout=60_000)
                loaded = time.perf_counter()
                tab.click()
                page.locator("#mlnb-runs-panel .mlnb-run").nth(49).wait_for(timeout=60_000)
                done = time.perf_counter()
                out["page_load_to_panel_ready_ms"].append((done - start) * 1000)
                out["open_panel_to_50_rows_ms"].append((done - loaded) * 1000)
                took = page.evaluate("""async (token) => {
                    const t = performance.now();
                    const s = await fetch('/mlnb/api/runs/changes', {headers: {Authorization: `token ${token}`}});
                    await s.json();
                    return performance.now() - t;
                }""", token)
                out["unchanged_poll_ms"].append(took)
                context.close()
        finally:
            b.close()
    return {k: round(statistics.median(v), 1) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--project", type=Path, help="where to make (or find) the project")
    args = parser.parse_args()
    os.environ.update(TELEMETRY_OFF)
    with tempfile.TemporaryDirectory(prefix="mlnb-bench-runs-") as tmp:
        base = args.project or Path(tmp)
        from mlnb.core.project import load_project
        from mlnb.services import promotion, registry, runs

        report: dict[str, object] = {"builds": args.builds}
        if not (base / "proj" / "mlflow.db").exists():
            root = make_registry_project(base)
            start = time.perf_counter()
            ids = fake_builds(root, specs(args.builds))
            report["made_in_s"] = round(time.perf_counter() - start, 1)
            project = registry.open_registry(load_project(root))
            promotion.promote(project, ids[-2], note="bench")
            promotion.promote(project, ids[-3], note="bench")
        root = base / "proj"
        project = registry.open_registry(load_project(root))
        for limit in (20, 50, 200):
            report[f"list_runs_{limit}_ms"] = round(median_ms(lambda n=limit: runs.list_runs(project, n),
                                                              args.rounds), 1)
        report["changes_ms"] = round(median_ms(lambda: runs.changes(project), args.rounds * 10), 2)
        home = Path(tmp) / "home"
        home.mkdir()
        proc, url, token = start_lab(root, home)
        try:
            for limit in (50, 200):
                body = get(url, token, f"/mlnb/api/runs?limit={limit}")
                report[f"http_runs_{limit}_kb"] = round(len(body) / 1024, 1)
                report[f"http_runs_{limit}_ms"] = round(median_ms(
                    lambda n=limit: get(url, token, f"/mlnb/api/runs?limit={n}"), args.rounds), 1)
            report["http_changes_ms"] = round(median_ms(lambda: get(url, token, "/mlnb/api/runs/changes"),
                                                        args.rounds * 10), 1)
            if not args.no_browser:
                report.update(browser(url, token, args.rounds))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
