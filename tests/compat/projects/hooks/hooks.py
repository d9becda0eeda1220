"""Hooks that leave a trace under out/hooks/ (compared as products are)."""
import json
from pathlib import Path


def _log(name, data):
    folder = Path("out", "hooks")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(data, sort_keys=True))


def _simple(params):
    return {k: v for k, v in params.to_dict().items() if isinstance(v, (int, float, str))}


def dag_render(dag):
    _log("dag-render", {"tasks": sorted(dag)})


def dag_finish(dag, report):
    _log("dag-finish", {"tasks": sorted(dag), "ran": sorted(str(name) for name in report["name"])})


def dag_failure(dag, traceback):
    _log("dag-failure", {"tasks": sorted(dag), "build_failed": "build" in traceback})


def task_render(task, params, client):
    _log(f"render-{task.name}", {"params": _simple(params), "client": client is None})


def check_rows(product, task, minimum):
    lines = Path(str(product["data"])).read_text().splitlines()
    if len(lines) - 1 < minimum:
        raise ValueError(f"{task.name}: only {len(lines) - 1} rows")
    _log(f"finish-{task.name}", {"rows": len(lines) - 1, "products": sorted(Path(str(p)).name for p in product)})


def task_finish(task, product):
    _log(f"finish-{task.name}", {"product": Path(str(product)).name, "total": json.loads(Path(str(product)).read_text())})


def task_failure(task):
    _log(f"failure-{task.name}", {"status": str(task.exec_status)})
