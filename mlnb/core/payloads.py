"""The REST payloads the Jupyter server extension (:mod:`mlnb.jupyter`) answers with, as TypedDicts.

The JupyterLab extension declares the same shapes as TypeScript interfaces (``extension/src/*.ts``);
:data:`TS_INTERFACES` says which interface is which TypedDict, and ``tests/unit/core/test_payload_types.py``
fails when their field names or optionality (``name?:`` / ``NotRequired``) differ, or when a new
exported interface is neither mapped nor listed in :data:`CLIENT_ONLY`. (No ``from __future__ import
annotations`` here: ``NotRequired`` must be evaluated for ``__optional_keys__``.)
"""

from typing import Any, Generic, Literal, NotRequired, TypedDict, TypeVar

T = TypeVar("T")
Verdict = Literal["promotable", "not_promotable", "failed", "-"]
TaskStateName = Literal["up to date", "outdated", "failed", "running"]


# ---- Runs panel: GET runs, GET runs/<id>, GET compare, POST promote/rollback/debug, GET runs/<id>/lineage
class ParamDiff(TypedDict):
    key: str
    value: str | None
    champion: str | None


class Promotion(TypedDict):
    action: str
    time: str
    user: str
    version: str | None
    previous_version: str | None
    note: str
    reason: str
    forced: bool


class Plot(TypedDict):
    run_id: str
    path: str
    task: str
    name: str


class Run(TypedDict):
    run_id: str
    run_name: NotRequired[str]
    start_time: int
    end_time: NotRequired[int | None]
    status: str
    git_commit: str
    gate: Literal["passed", "failed", "-"]
    verdict: Verdict
    gate_reason: str
    failed_task: str
    failure: NotRequired[str]
    failure_task: NotRequired[str]
    debuggable: NotRequired[bool]
    metrics: dict[str, float]
    model_version: str | None
    champion: bool
    previous: bool
    params_diff: NotRequired[list[ParamDiff]]
    promotion: NotRequired[Promotion | None]
    mlflow_url: NotRequired[str | None]


class Champion(TypedDict):
    version: str
    run_id: str | None
    metrics: NotRequired[dict[str, float]]
    params: NotRequired[dict[str, str]]


class RunList(TypedDict):
    model_name: str
    token: NotRequired[str]
    metric_keys: NotRequired[list[str]]
    champion: Champion | None
    runs: list[Run]


class RunFull(Run):
    params: dict[str, str]
    plots: list[Plot]
    promotions: list[Promotion]


class Requirement(TypedDict):
    name: str
    held: bool
    required: bool
    detail: str


class RunDetail(TypedDict):
    run: RunFull
    champion: Champion | None
    deltas: dict[str, float]
    promotable: bool
    refusal: str | None
    requirements: NotRequired[list[Requirement]]


class LineageRecord(TypedDict):
    action: str
    time: str
    user: str
    version: NotRequired[str | None]
    note: NotRequired[str]
    forced: NotRequired[bool]
    bypassed: NotRequired[list[str]]


class LineageLink(TypedDict):
    name: str
    held: bool | None
    detail: str


class Lineage(TypedDict):
    ref: str
    model: dict[str, Any] | None  # name, version, aliases, artifact_sha256, source_run_id, registered_by
    build: dict[str, Any]  # run_id, status, start_time, verdict, gate_reason, metrics
    git: dict[str, str | None]  # commit, clean, changed
    params: dict[str, str]
    gate_settings_changes: str
    dvc: dict[str, Any]  # recorded, note, stages
    notebooks: list[dict[str, Any]]  # task, run_id, status, artifacts
    promotions: list[LineageRecord]
    approvals: list[dict[str, str]]
    links: NotRequired[list[LineageLink]]


class CompareRow(TypedDict, Generic[T]):
    key: str
    a: T | None
    b: T | None
    differs: bool
    delta: NotRequired[float | None]


class Comparison(TypedDict):
    model_name: str
    a: RunFull
    b: RunFull
    params: list[CompareRow[str]]
    metrics: list[CompareRow[float]]
    plots: list[dict[str, Any]]  # name, a: Plot | None, b: Plot | None


class Change(TypedDict):
    changed: bool
    message: str
    version: str
    previous_version: str | None


class DebugNotebook(TypedDict):
    path: str
    task: str


# ---- Pipeline panel: GET pipeline, POST pipeline/build, POST pipeline/stop, GET pipeline/events
class TaskFailure(TypedDict):
    cell: int | None
    line: str
    error: str
    notebook: str | None


class TaskView(TypedDict):
    name: str
    upstream: list[str]
    state: TaskStateName
    reasons: list[str]
    source: str | None
    executed: str | None
    failure: TaskFailure | None


class LiveTask(TypedDict):
    state: TaskStateName
    cell: NotRequired[int | None]
    cells: NotRequired[int | None]
    seconds: NotRequired[float | None]


class BuildView(TypedDict):
    running: bool
    pid: int | None
    origin: str | None
    force: bool
    resume: bool
    started: float | None
    finished: bool
    ok: bool | None
    interrupted: bool
    error: str | None
    run_id: str | None
    tasks: dict[str, LiveTask]


class PipelineSnapshot(TypedDict):
    project: str | None
    tasks: list[TaskView]
    build: BuildView


class PipelineEvent(TypedDict):
    """One event of :mod:`mlnb.core.build_events` (more keys by kind: ``task``, ``status``, ``cell``...)."""

    event: str
    t: NotRequired[float]
    task: NotRequired[str]


class BuildStarted(TypedDict):
    pid: int
    mode: Literal["build", "force", "resume"]
    log: str
    running: bool


class BuildStopped(TypedDict):
    pid: int
    signal: str


class RunChanges(TypedDict):  # GET runs/changes (request.ts reads it inline)
    token: str


class Promotions(TypedDict):  # GET promotions
    promotions: list[dict[str, Any]]  # the audit trail's records (mlnb.core.audit), oldest first


# ``<file>:<interface>`` -> the TypedDict it declares again.
TS_INTERFACES: dict[str, type] = {
    "request.ts:IParamDiff": ParamDiff, "request.ts:IPromotion": Promotion, "request.ts:IPlot": Plot,
    "request.ts:IRun": Run, "request.ts:IChampion": Champion, "request.ts:IRunList": RunList,
    "request.ts:IRunFull": RunFull, "request.ts:IRequirement": Requirement, "request.ts:IRunDetail": RunDetail,
    "request.ts:ILineageRecord": LineageRecord, "request.ts:ILineageLink": LineageLink,
    "request.ts:ILineage": Lineage, "request.ts:ICompareRow": CompareRow, "request.ts:IComparison": Comparison,
    "request.ts:IChange": Change, "request.ts:IDebugNotebook": DebugNotebook,
    "pipeline-model.ts:ITaskFailure": TaskFailure, "pipeline-model.ts:ITaskView": TaskView,
    "pipeline-model.ts:ILiveTask": LiveTask, "pipeline-model.ts:IBuildView": BuildView,
    "pipeline-model.ts:IPipelineSnapshot": PipelineSnapshot, "pipeline-model.ts:IPipelineEvent": PipelineEvent,
    "pipeline-api.ts:IBuildStarted": BuildStarted, "pipeline-api.ts:IBuildStopped": BuildStopped,
}
# Fields the panel adds to a payload after it arrived (not sent by the server).
CLIENT_FIELDS: dict[str, set[str]] = {"pipeline-model.ts:IBuildView": {"settled"}}
# Exported interfaces that describe no server payload (panel state, options, layout).
CLIENT_ONLY = frozenset({
    "lineage-view.ts:ILineageRow", "panel.ts:IRunsPanelOptions", "pipeline-api.ts:IEventStream",
    "pipeline-layout.ts:INodeBox", "pipeline-layout.ts:IEdgePath", "pipeline-layout.ts:ILayout",
    "pipeline-model.ts:IPipelineState", "pipeline.ts:IPipelineApi", "pipeline.ts:IPipelinePanelOptions",
    "runviews.ts:IRunDetailOptions",
})
