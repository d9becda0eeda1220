"""JupyterLab page load to the Runs panel ready, in Debian's headless Chromium.

A throwaway project with ``--builds`` fake builds (real MLflow store, registered versions), served
by ``scripts/lab`` exactly as ``make lab`` starts it (only port, token and runtime directories are
the benchmark's). Each round is a fresh browser context (empty cache) loading ``/lab?reset``:

- *shell*: navigation start until JupyterLab's main dock panel is visible;
- *runs*: navigation start until the Runs panel (opened by a click on its sidebar tab right after
  the shell is up) lists its first run.

The first round is reported apart (``cold``: the server's first MLflow queries); the rest as
median and max. Usage: .venv/bin/python benchmarks/lab.py [--rounds 5] [--builds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, TELEMETRY_OFF, start_lab, stop, wait_for  # noqa: E402

SETUP = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.registry_fixtures import fake_builds, make_registry_project
root = make_registry_project(Path(sys.argv[2]))
n = int(sys.argv[3])
fake_builds(root, [{"f1": 0.8 + i * 0.1 / n, "roc_auc": 0.9, "gate": i % 3 != 0} for i in range(n)])
print(root)
"""


def one_load(browser, url: str, token: str) -> tuple[float, float]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        start = time.perf_counter()
        page.goto(f"{url}/lab?reset&token={token}")
        page.locator("#jp-main-dock-panel").wait_for(state="visible", timeout=60_000)
        shell = time.perf_counter() - start
        page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="mlnb-runs-panel"]').click()
        page.locator("#mlnb-runs-panel .mlnb-run").first.wait_for(state="visible", timeout=60_000)
        return shell, time.perf_counter() - start
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--builds", type=int, default=20)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    env = {**os.environ, **TELEMETRY_OFF, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory(prefix="mlnb-bench-lab-") as tmp:
        base, home = Path(tmp) / "project", Path(tmp) / "jupyter"
        base.mkdir()
        home.mkdir()
        made = subprocess.run([sys.executable, "-c", SETUP, str(REPO), str(base), str(args.builds)], env=env,
                              capture_output=True, text=True, check=True)
        root = Path(made.stdout.strip().splitlines()[-1])
        proc, server = start_lab(root, home, env)
        try:
            started = time.perf_counter()
            wait_for(proc, server)
            print(f"server up (scripts/lab): {time.perf_counter() - started:.1f} s; {args.builds} builds in the store")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    times = [one_load(browser, server.url, server.token) for _ in range(args.rounds)]
                finally:
                    browser.close()
        finally:
            stop(proc, server.url, server.token)
    cold, warm = times[0], times[1:]
    result = {"cold": {"shell_s": round(cold[0], 2), "runs_s": round(cold[1], 2)}}
    if warm:
        result["warm"] = {k: {"median_s": round(statistics.median(v), 2), "max_s": round(max(v), 2)}
                          for k, v in (("shell", [t[0] for t in warm]), ("runs", [t[1] for t in warm]))}
    print(f"cold: shell {cold[0]:.2f} s, Runs panel ready {cold[1]:.2f} s")
    if warm:
        print(f"warm (median of {len(warm)}): shell {result['warm']['shell']['median_s']:.2f} s, Runs panel ready "
              f"{result['warm']['runs']['median_s']:.2f} s (max {result['warm']['runs']['max_s']:.2f} s)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
