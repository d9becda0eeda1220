"""Which tasks are up to date or outdated, and why (``mlnb status``, ``mlnb dvc commit``): runs nothing.

The answer comes without Ploomber when every task is provably up to date (the fast path of
:mod:`mlnb.adapters.ploomber.uptodate`, so a no-op ``mlnb status`` imports neither Ploomber nor MLflow);
otherwise Ploomber's view of each task, plus, in a DVC project, the imported project modules that
changed since the last recorded build.
"""

from __future__ import annotations

from typing import Any

from mlnb.adapters.dvc import repo as versioning
from mlnb.adapters.ploomber import pipeline, uptodate
from mlnb.core.project import Project
from mlnb.core.spec import PipelineSpec


def task_states(project: Project, *, fast: bool = True) -> list[pipeline.TaskState]:
    """Each task of ``project``'s pipeline in order, outdated or not with the reasons. With ``fast``, an
    all-up-to-date pipeline is answered without opening Ploomber's DAG (no reasons are needed then)."""
    spec = project.spec
    if fast and (states := _fast_states(spec)) is not None:
        return states
    return _ploomber_states(spec, pipeline.open_dag(spec, project.env))


def current_tasks(project: Project) -> list[str]:
    """The tasks whose products are current (what ``mlnb dvc commit`` may record)."""
    return [s.name for s in task_states(project, fast=False) if not s.outdated]


def _fast_states(spec: PipelineSpec) -> list[pipeline.TaskState] | None:
    """Every task up to date, decided without Ploomber (:mod:`mlnb.adapters.ploomber.uptodate`); None when that
    is not proven (then :func:`_ploomber_states` asks Ploomber and gives the reasons)."""
    if not uptodate.all_up_to_date(spec):
        return None
    if versioning.is_dvc_repo(spec.root) and versioning.changed_modules(spec):
        return None
    return [pipeline.TaskState(n, False, ()) for n in spec.tasks]


def _ploomber_states(spec: PipelineSpec, dag: Any) -> list[pipeline.TaskState]:
    """Ploomber's view of each task plus, in a DVC project, changed imported modules (and what
    depends on the tasks that import them)."""
    states = pipeline.status(spec, dag)
    changed = versioning.changed_modules(spec) if versioning.is_dvc_repo(spec.root) else {}
    if not changed:
        return states
    out: dict[str, pipeline.TaskState] = {}
    for state in states:  # spec.tasks is in topological order
        reasons = list(state.reasons)
        reasons += [f"imported module changed: {m}" for m in changed.get(state.name, [])]
        reasons += [f"upstream {up} is outdated" for up in spec.tasks[state.name].upstream
                    if out[up].outdated and f"upstream {up} is outdated" not in reasons
                    and f"upstream {up} is newer" not in reasons]
        out[state.name] = pipeline.TaskState(state.name, bool(reasons), tuple(reasons))
    return list(out.values())
