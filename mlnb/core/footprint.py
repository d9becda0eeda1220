"""What mlnb writes into a project, listed once (pure): ``mlnb init`` announces it, the scaffold's
``.gitignore`` covers it, and each entry says how to point it elsewhere."""

from __future__ import annotations

from typing import NamedTuple


class Footprint(NamedTuple):
    path: str
    what: str
    elsewhere: str


FOOTPRINT: tuple[Footprint, ...] = (
    Footprint("products/", "the last build's summary (last_build.json), failed tasks' outputs (_failed/); a "
              "scaffolded project's task outputs", "task outputs: edit the product paths in pipeline.yaml"),
    Footprint("mlflow.db, mlartifacts/", "the local MLflow store (build, task and registered-model runs)",
              "set MLFLOW_TRACKING_URI (a server or another store)"),
    Footprint(".mlnb/", "mlnb's state: build log, events and lock, failure snapshots, debug stores, caches",
              "set MLNB_STATE_DIR (relative to the project, or an absolute path; safe to delete between builds)"),
    Footprint("reports/", "`mlnb report` output", "mlnb report -o PATH"),
    Footprint("dvc.lock", "the outputs' hashes when a build records them in DVC (commit it)",
              "cannot be moved (DVC's; mlnb build --no-dvc writes none)"),
)


def lines() -> list[str]:
    """One line per entry: ``path: what (elsewhere: ...)``."""
    width = max(len(f.path) for f in FOOTPRINT)
    return [f"{f.path:<{width}}  {f.what}; to move it: {f.elsewhere}" for f in FOOTPRINT]
