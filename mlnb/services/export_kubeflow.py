"""``mlnb export kubeflow``: the pipeline as a Kubeflow Pipelines v2 pipeline (the IR YAML the KFP SDK's
compiler writes, written offline as plain YAML, without the SDK).

One component, executor and DAG task per pipeline task: the project image runs the step command of
:mod:`mlnb.services.export` with ``--products-out`` KFP's path for the component's output parameter
``products`` (a STRING: the manifest), which each downstream task takes as an input parameter
(``taskOutputParameter``) and passes on as ``--upstream``. ``-p`` overrides given at export time are pipeline
parameters (their values the defaults, changed for a run in the KFP UI or client).

Credentials: a second YAML document, the ``kubernetes`` platform spec that kfp-kubernetes'
``use_secret_as_env`` writes, maps the named keys of each Secret to environment variables (KFP maps keys
one by one: ``--mlflow-secret-key``/``--dvc-secret-key`` name them). The run's namespace and service account
are not part of a KFP pipeline: they are chosen when a run is started.
"""

from __future__ import annotations

import copy
from importlib import metadata
from pathlib import Path
from typing import Any

from mlnb.core.project import Project
from mlnb.services.export import PRODUCTS, ExportPlan, ExportRequest, ExportResult, Step, plan, to_yaml
from mlnb.services.export import write as write_file

FILENAME = "kubeflow-pipeline.yaml"  # not pipeline.yaml: Ploomber's spec has that name
SCHEMA_VERSION = "2.1.0"


def _upstream_input(step: str) -> str:
    return "upstream_" + step.replace("-", "_")


def _param_input(name: str) -> str:
    return f"param_{name}"


def _component(step: Step) -> str:
    return f"comp-{step.name}"


def _executor(step: Step) -> str:
    return f"exec-{step.name}"


def pipeline_spec(p: ExportPlan) -> dict[str, Any]:
    """The ``PipelineSpec`` (IR) document of plan ``p``."""
    spec: dict[str, Any] = {
        "components": {_component(s): _component_spec(p, s) for s in p.steps},
        "deploymentSpec": {"executors": {_executor(s): {"container": _container(p, s)} for s in p.steps}},
        "pipelineInfo": {"name": p.name, "description": f"{p.spec_file}, exported by mlnb"},
        "root": {"dag": {"tasks": {s.name: _task(p, s) for s in p.steps}}},
        "schemaVersion": SCHEMA_VERSION,
        "sdkVersion": f"mlnb-{_version()}",
    }
    if p.params:
        spec["root"]["inputDefinitions"] = {"parameters": {
            q.name: {"defaultValue": q.value, "description": f"-p {q.key}", "isOptional": True,
                     "parameterType": "STRING"} for q in p.params}}
    return spec


def _component_spec(p: ExportPlan, step: Step) -> dict[str, Any]:
    inputs = {**{_param_input(q.name): {"parameterType": "STRING"} for q in p.params},
              **{_upstream_input(up): {"parameterType": "STRING"} for up in step.upstream}}
    component: dict[str, Any] = {"executorLabel": _executor(step)}
    if inputs:
        component["inputDefinitions"] = {"parameters": inputs}
    component["outputDefinitions"] = {"parameters": {PRODUCTS: {"parameterType": "STRING"}}}
    return component


def _container(p: ExportPlan, step: Step) -> dict[str, Any]:
    r = p.request
    args = p.step_args(step, {up: f"{{{{$.inputs.parameters['{_upstream_input(up)}']}}}}" for up in step.upstream},
                       {q.name: f"{{{{$.inputs.parameters['{_param_input(q.name)}']}}}}" for q in p.params},
                       f"{{{{$.outputs.parameters['{PRODUCTS}'].output_file}}}}")
    container: dict[str, Any] = {"image": r.image, "command": ["mlnb"], "args": args}
    if p.env:
        container["env"] = [{"name": k, "value": v} for k, v in p.env.items()]
    container["resources"] = {"resourceCpuRequest": r.cpu, "resourceMemoryRequest": r.memory}
    return container


def _task(p: ExportPlan, step: Step) -> dict[str, Any]:
    task: dict[str, Any] = {"cachingOptions": {"enableCache": False}, "componentRef": {"name": _component(step)}}
    if step.upstream:
        task["dependentTasks"] = list(step.upstream)
    parameters = {**{_param_input(q.name): {"componentInputParameter": q.name} for q in p.params},
                  **{_upstream_input(up): {"taskOutputParameter": {"outputParameterKey": PRODUCTS, "producerTask": up}}
                     for up in step.upstream}}
    if parameters:
        task["inputs"] = {"parameters": parameters}
    if p.request.retries:
        task["retryPolicy"] = {"backoffDuration": "30s", "backoffFactor": 2.0, "maxRetryCount": p.request.retries}
    task["taskInfo"] = {"name": step.name}
    return task


def platform_spec(p: ExportPlan) -> dict[str, Any] | None:
    """The ``kubernetes`` platform spec (kfp-kubernetes' format): each step's secrets as environment variables
    and its timeout; None when there is neither."""
    r = p.request
    keys: dict[str, list[str]] = {}
    for secret, names in ((r.mlflow_secret, r.mlflow_secret_keys), (r.dvc_secret, r.dvc_secret_keys)):
        if secret and names:
            keys.setdefault(secret, [])
            keys[secret] += [k for k in names if k not in keys[secret]]
    config: dict[str, Any] = {}
    if keys:
        config["secretAsEnv"] = [{"keyToEnv": [{"envVar": k, "secretKey": k} for k in names], "secretName": secret,
                                  "secretNameParameter": {"runtimeValue": {"constant": secret}}}
                                 for secret, names in keys.items()]
    if r.timeout:
        config["activeDeadlineSeconds"] = str(r.timeout)  # an int64: a string in protobuf's JSON, as KFP writes it
    if not config:
        return None
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": {_executor(s): copy.deepcopy(config)
                                                                          for s in p.steps}}}}}


def _version() -> str:
    try:
        return metadata.version("mlnb")
    except metadata.PackageNotFoundError:
        return "unknown"


def export(project: Project, request: ExportRequest, out: Path) -> ExportResult:
    """Plan, lay out and write ``out/kubeflow-pipeline.yaml``."""
    p = plan(project, request)
    docs = [pipeline_spec(p)]
    platform = platform_spec(p)
    if platform is not None:
        docs.append(platform)
    header = ["PIPELINE DEFINITION", f"Name: {p.name}",
              f"Kubeflow Pipelines v2 pipeline written by `mlnb export kubeflow` from {p.spec_file}: one task per",
              f"pipeline task, each running `mlnb run TASK --exchange` in {request.image}.",
              f"Upload it: kfp pipeline create -p {p.name} {FILENAME}  (or the KFP UI's Upload pipeline)"]
    return ExportResult(write_file(out, FILENAME, to_yaml(docs, header)), p)
