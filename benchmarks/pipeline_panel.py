"""Build progress latency of the JupyterLab Pipeline panel: a task's event on the server -> shown.

A real JupyterLab (mlnb's server extension and the built frontend) over a chain of ``--tasks`` small
notebook tasks (each sleeps ``--sleep`` s, so every event is seen on its own); headless Chromium
opens the Pipeline panel and clicks Force ``--rounds`` times. For each task event, the latency is
the time the panel's DOM shows it (a MutationObserver in the page, ``Date.now()``) minus the time
the build wrote the event (``t`` in ``.mlnb/build/events.jsonl``, ``time.time()``): same machine,
same clock. It includes the server's poll of the events file (``POLL`` = 0.1 s), the push over the
event stream and the panel's render; painting follows within a frame.

Usage: .venv/bin/python benchmarks/pipeline_panel.py [--rounds 5] [--tasks 6] [--sleep 0.3]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import REPO, git_init, write_notebook
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, TELEMETRY_OFF, free_port, http, jupyter_home, stop

OBSERVE = """() => {
  window.__seen = [];
  const panel = document.querySelector('#mlnb-pipeline-panel');
  let last = {};
  const check = () => {
    for (const n of panel.querySelectorAll('.mlnb-task')) {
      if (last[n.dataset.task] !== n.dataset.state) {
        last[n.dataset.task] = n.dataset.state;
        window.__seen.push({task: n.dataset.task, state: n.dataset.state, t: Date.now()});
      }
    }
    const status = panel.querySelector('.mlnb-pipeline-status').textContent;
    if (last.__status !== status) {
      last.__status = status;
      window.__seen.push({task: '', state: status, t: Date.now()});
    }
  };
  check();
  new MutationObserver(check).observe(panel, {childList: true, subtree: true, attributes: true,
                                              characterData: true});
}"""


def make_chain(base: Path, tasks: int, sleep: float) -> Path:
    root = base / "chain"
    names = [f"t{i}" for i in range(tasks)]
    for i, name in enumerate(names):
        upstream = [names[i - 1]] if i else None
        write_notebook(root / f"notebooks/{name}.ipynb", [
            ("params", f"upstream = {upstream!r}\nproduct = None"),
            ("code", f"import time\ntime.sleep({sleep})"),
            ("code", f"from pathlib import Path\nPath(product['out']).write_text('{name}')"),
        ])
    (root / "pipeline.yaml").write_text("tasks:\n" + "".join(
        f"  - source: notebooks/{n}.ipynb\n    product: {{nb: products/{n}/{n}.ipynb, out: products/{n}/out.txt}}\n"
        for n in names))
    (root / "env.yaml").write_text("mlflow:\n  experiment: chain\n")
    (root / ".gitignore").write_text("products/\nmlflow.db\nmlruns/\n.mlnb/\n")
    git_init(root)
    return root


def latencies(events: list[dict], seen: list[dict]) -> dict[str, list[float]]:
    """Milliseconds from each task-started / task-finished / build-finished event to the panel showing it."""
    out: dict[str, list[float]] = {"task started -> running": [], "task finished -> up to date": [],
                                   "build finished -> status line": []}
    for event in events:
        t = event["t"] * 1000
        if event["event"] == "task-started":
            shown = next(s["t"] for s in seen if s["task"] == event["task"] and s["state"] == "running")
            out["task started -> running"].append(shown - t)
        elif event["event"] == "task-finished":
            running = next(i for i, s in enumerate(seen) if s["task"] == event["task"] and s["state"] == "running")
            shown = next(s["t"] for s in seen[running:] if s["task"] == event["task"] and s["state"] == "up to date")
            out["task finished -> up to date"].append(shown - t)
        elif event["event"] == "build-finished":
            running = next(i for i, s in enumerate(seen) if not s["task"] and s["state"].startswith("Build"))
            shown = next(s["t"] for s in seen[running:] if not s["task"] and s["state"].startswith("Last build"))
            out["build finished -> status line"].append(shown - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--sleep", type=float, default=0.3)
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    base = Path(tempfile.mkdtemp(prefix="mlnb-bench-panel-"))
    root = make_chain(base, args.tasks, args.sleep)
    env = {**os.environ, **TELEMETRY_OFF, **jupyter_home(base / "home"), "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    port, token = free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    with (base / "jupyter.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
                                 "--ServerApp.ip=127.0.0.1", "--ServerApp.allow_root=True",
                                 f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
                                cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    results: dict[str, list[float]] = {}
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if http("GET", f"{url}/api/status", token)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                sys.exit(f"jupyter lab did not start: see {base / 'jupyter.log'}")
            time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{url}/lab?reset&token={token}")
            page.locator('.jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id="mlnb-pipeline-panel"]').click()
            expect(page.locator("#mlnb-pipeline-panel .mlnb-task")).to_have_count(args.tasks, timeout=60_000)
            for n in range(args.rounds):
                page.evaluate(OBSERVE)
                force = page.locator("#mlnb-pipeline-panel .mlnb-pipeline-force")
                force.click()
                expect(force).to_be_disabled()  # at once: the request is on its way, then the build runs
                expect(force).to_be_enabled(timeout=120_000)
                expect(page.locator("#mlnb-pipeline-panel .mlnb-pipeline-status")).to_have_text(
                    "Last build succeeded (from JupyterLab).")
                events = [json.loads(line) for line in (root / ".mlnb/build/events.jsonl").read_text().splitlines()]
                for key, values in latencies(events, page.evaluate("window.__seen")).items():
                    results.setdefault(key, []).extend(values)
                print(f"round {n + 1}/{args.rounds} done", file=sys.stderr)
            browser.close()
    finally:
        stop(proc, url, token)
    print(f"Pipeline panel: build progress latency, event written -> shown in the panel "
          f"({args.rounds} builds x {args.tasks} tasks; server poll 0.1 s)")
    print(f"{'event':32} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for key, values in results.items():
        values.sort()
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        print(f"{key:32} {len(values):>4} {statistics.median(values):>8.0f} {p95:>8.0f} {values[-1]:>8.0f}")


if __name__ == "__main__":
    main()
