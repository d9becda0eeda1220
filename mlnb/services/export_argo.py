"""``mlnb export argo``: the pipeline as an Argo Workflows ``Workflow`` (plain YAML, written offline).

One DAG task per pipeline task, each with its own container template: the project image runs the step
command of :mod:`mlnb.services.export`; the template's output parameter ``products`` is read from
:data:`PRODUCTS_OUT` (the manifest the step wrote) and handed to each downstream task as an input parameter,
passed on as ``--upstream``. ``-p`` overrides given at export time are the Workflow's ``arguments.parameters``
(their values the defaults; ``argo submit -p NAME=VALUE`` changes one for a run). Credentials come from the
named Secrets through ``envFrom.secretRef`` (every key of the Secret becomes an environment variable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlnb.core.project import Project
from mlnb.services.export import DAG_TEMPLATE, PRODUCTS, ExportPlan, ExportRequest, ExportResult, Step, plan, to_yaml
from mlnb.services.export import write as write_file

FILENAME = "workflow.yaml"
PRODUCTS_OUT = "/tmp/mlnb/products.json"  # in the step's own container
API_VERSION = "argoproj.io/v1alpha1"


def workflow(p: ExportPlan) -> dict[str, Any]:
    """The ``Workflow`` manifest of plan ``p``."""
    r = p.request
    metadata: dict[str, Any] = {"generateName": f"{p.name}-"}
    if r.namespace:
        metadata["namespace"] = r.namespace
    metadata["labels"] = {"app.kubernetes.io/name": p.name, "app.kubernetes.io/managed-by": "mlnb"}
    spec: dict[str, Any] = {"entrypoint": DAG_TEMPLATE}
    if r.service_account:
        spec["serviceAccountName"] = r.service_account
    if p.params:
        spec["arguments"] = {"parameters": [{"name": q.name, "value": q.value, "description": f"-p {q.key}"}
                                            for q in p.params]}
    spec["templates"] = [{"name": DAG_TEMPLATE, "dag": {"tasks": [_dag_task(s) for s in p.steps]}},
                         *(_template(p, s) for s in p.steps)]
    return {"apiVersion": API_VERSION, "kind": "Workflow", "metadata": metadata, "spec": spec}


def _input(up: str) -> str:
    return f"upstream-{up}"


def _dag_task(step: Step) -> dict[str, Any]:
    task: dict[str, Any] = {"name": step.name, "template": step.name}
    if step.upstream:
        task["dependencies"] = list(step.upstream)
        task["arguments"] = {"parameters": [{"name": _input(up), "value": f"{{{{tasks.{up}.outputs.parameters."
                                                                           f"{PRODUCTS}}}}}"} for up in step.upstream]}
    return task


def _template(p: ExportPlan, step: Step) -> dict[str, Any]:
    r = p.request
    args = p.step_args(step, {up: f"{{{{inputs.parameters.{_input(up)}}}}}" for up in step.upstream},
                       {q.name: f"{{{{workflow.parameters.{q.name}}}}}" for q in p.params}, PRODUCTS_OUT)
    container: dict[str, Any] = {"image": r.image, "command": ["mlnb"], "args": args}
    if p.env:
        container["env"] = [{"name": k, "value": v} for k, v in p.env.items()]
    secrets = [s for s in (r.mlflow_secret, r.dvc_secret) if s]
    if secrets:
        container["envFrom"] = [{"secretRef": {"name": s}} for s in dict.fromkeys(secrets)]
    container["resources"] = {"requests": {"cpu": r.cpu, "memory": r.memory}}
    template: dict[str, Any] = {"name": step.name, "metadata": {"labels": {"mlnb/task": _label_value(step.task)}}}
    if step.upstream:
        template["inputs"] = {"parameters": [{"name": _input(up)} for up in step.upstream]}
    template["outputs"] = {"parameters": [{"name": PRODUCTS, "valueFrom": {"path": PRODUCTS_OUT}}]}
    if r.retries:
        template["retryStrategy"] = {"limit": r.retries, "retryPolicy": "OnFailure",
                                     "backoff": {"duration": "30s", "factor": 2}}
    if r.timeout:
        template["activeDeadlineSeconds"] = r.timeout
    template["container"] = container
    return template


def _label_value(task: str) -> str:
    """A task name as a label value (63 characters of ``[A-Za-z0-9._-]``, alphanumeric at both ends)."""
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in task)[:63].strip("._-") or "task"


def export(project: Project, request: ExportRequest, out: Path) -> ExportResult:
    """Plan, lay out and write ``out/workflow.yaml``."""
    p = plan(project, request)
    header = [f"Argo Workflow written by `mlnb export argo` from {p.spec_file}: one step per task, each running",
              f"`mlnb run TASK --exchange` in {request.image}.",
              f"Submit it: argo submit{' -n ' + request.namespace if request.namespace else ''} {FILENAME} --watch"
              + (" [-p NAME=VALUE ...]" if p.params else "")]
    return ExportResult(write_file(out, FILENAME, to_yaml([workflow(p)], header)), p)
