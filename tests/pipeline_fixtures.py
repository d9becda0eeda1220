"""A small real pipeline whose tasks can be held running: ``prep -> fit -> report``.

Each task's second cell sleeps ``<task>.seconds`` and then, when ``<task>.wait_for`` names a file,
waits until that file exists: a test holds a task running (to watch it, stop it or start a second
build meanwhile) and lets it go by creating the file, with no timing guesses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import write_notebook

TASKS = ("prep", "fit", "report")
WAIT = ("import time\nfrom pathlib import Path\ntime.sleep(seconds)\n"
        "while wait_for and not Path(wait_for).exists():\n    time.sleep(0.05)")


def write_pipeline(root: Path, mlflow: dict[str, Any] | None = None) -> Path:
    """The three tasks' notebooks, ``pipeline.yaml`` and ``env.yaml`` in ``root`` (keeping ``mlflow``)."""
    for name, upstream in (("prep", None), ("fit", ["prep"]), ("report", ["fit"])):
        write_notebook(root / f"notebooks/{name}.ipynb", [
            ("params", f"upstream = {upstream!r}\nproduct = None\nseconds = 0.0\nwait_for = ''"),
            ("code", WAIT),
            ("code", f"Path(product['out']).write_text('{name}')\nprint('{name} done')"),
        ])
    (root / "pipeline.yaml").write_text("tasks:\n" + "".join(
        f"  - source: notebooks/{n}.ipynb\n    product: {{nb: products/{n}/{n}.ipynb, out: products/{n}/out.txt}}\n"
        f"    params: {{seconds: '{{{{{n}.seconds}}}}', wait_for: '{{{{{n}.wait_for}}}}'}}\n" for n in TASKS))
    set_env(root, mlflow=mlflow or {"experiment": "slow"})
    return root


def set_env(root: Path, seconds: dict[str, float] | None = None, wait_for: dict[str, Path] | None = None,
            mlflow: dict[str, Any] | None = None) -> None:
    """Rewrite ``env.yaml``: each task's sleep and the file it waits for (none by default)."""
    path = root / "env.yaml"
    old = yaml.safe_load(path.read_text()) if path.exists() else {}
    env: dict[str, Any] = {n: {"seconds": float((seconds or {}).get(n, 0)), "wait_for": str((wait_for or {}).get(n, ""))}
                           for n in TASKS}
    env["mlflow"] = mlflow or (old or {}).get("mlflow") or {"experiment": "slow"}
    path.write_text(yaml.safe_dump(env, sort_keys=False))
