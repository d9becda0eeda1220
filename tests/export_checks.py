"""Offline validation of what ``mlnb export`` writes, with the engines' own schemas.

* Argo: the Workflow is parsed into hera's models (generated from Argo's OpenAPI schema) and must dump back
  to the same document (hera's models ignore unknown fields, so a field Argo does not know, or a value of
  the wrong type that pydantic coerces, shows up as a difference), then loaded by hera's own
  ``Workflow.from_dict``; then the rules Argo's validator adds to its schema (names, references, a DAG).
* Kubeflow: the pipeline document is parsed into the ``PipelineSpec`` protobuf of ``kfp-pipeline-spec`` and
  the platform document into ``PlatformSpec``, each executor's config into kfp-kubernetes'
  ``KubernetesExecutorConfig`` (``json_format.ParseDict`` refuses unknown fields and wrong types, as KFP's
  API server does); then the rules the KFP compiler keeps (references, inputs, placeholders, a DAG).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import FIXTURES

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ARGO_PARAM = re.compile(r"^[-a-zA-Z0-9_]+$")  # Argo's paramOrArtifactNameRegex


def argo(text: str) -> dict[str, Any]:
    """The Workflow in ``text``, checked against Argo's schema (via hera) and Argo's DAG rules."""
    from hera.workflows import Workflow as HeraWorkflow
    from hera.workflows.models import Workflow

    docs = list(yaml.safe_load_all(text))
    assert len(docs) == 1, f"expected one document, got {len(docs)}"
    doc = docs[0]
    model = Workflow.model_validate(doc)
    dumped = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    assert dumped == doc, f"fields Argo's schema does not have, or of another type: {_diff(doc, dumped)}"
    assert HeraWorkflow.from_dict(doc).build() is not None
    _argo_rules(doc)
    return doc


def _argo_rules(doc: dict[str, Any]) -> None:
    assert doc["apiVersion"] == "argoproj.io/v1alpha1" and doc["kind"] == "Workflow"
    assert DNS_LABEL.match(doc["metadata"]["generateName"].rstrip("-"))
    spec = doc["spec"]
    templates = {t["name"]: t for t in spec["templates"]}
    assert len(templates) == len(spec["templates"]), "template names are unique"
    assert spec["entrypoint"] in templates
    declared = {p["name"] for p in spec.get("arguments", {}).get("parameters", [])}
    assert all(ARGO_PARAM.match(n) for n in declared)
    tasks = {t["name"]: t for t in templates[spec["entrypoint"]]["dag"]["tasks"]}
    for name, task in tasks.items():
        assert DNS_LABEL.match(name) and not name[0].isdigit(), f"DAG task name {name!r}"
        template = templates[task["template"]]
        deps = task.get("dependencies", [])
        assert set(deps) <= set(tasks) and name not in deps, f"{name}: dependencies {deps}"
        wanted = {p["name"] for p in template.get("inputs", {}).get("parameters", [])}
        given = {p["name"]: p["value"] for p in task.get("arguments", {}).get("parameters", [])}
        assert set(given) == wanted, f"{name}: passes {sorted(given)}, its template takes {sorted(wanted)}"
        for value in given.values():
            for producer, output in re.findall(r"\{\{tasks\.([^.}]+)\.outputs\.parameters\.([^.}]+)\}\}", value):
                assert producer in deps, f"{name} reads {producer}'s output without depending on it"
                outputs = templates[tasks[producer]["template"]].get("outputs", {}).get("parameters", [])
                assert output in {o["name"] for o in outputs}
        text = yaml.safe_dump(template)
        assert set(re.findall(r"\{\{inputs\.parameters\.([^}]+)\}\}", text)) <= wanted
        assert set(re.findall(r"\{\{workflow\.parameters\.([^}]+)\}\}", text)) <= declared
        assert all(ARGO_PARAM.match(n) for n in wanted)
    _acyclic({n: t.get("dependencies", []) for n, t in tasks.items()})


def kubeflow(text: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The pipeline and platform documents in ``text``, checked against KFP's protobuf schemas and rules."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    docs = list(yaml.safe_load_all(text))
    assert 1 <= len(docs) <= 2, f"expected a pipeline and at most a platform document, got {len(docs)}"
    json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec())  # unknown fields and bad types raise
    platform = docs[1] if len(docs) == 2 else None
    if platform is not None:
        parsed = json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
        assert set(parsed.platforms) == {"kubernetes"}
        config = _kubernetes_config()
        for executor, value in parsed.platforms["kubernetes"].deployment_spec.executors.items():
            assert executor in docs[0]["deploymentSpec"]["executors"]
            json_format.ParseDict(json_format.MessageToDict(value), config())
    _kubeflow_rules(docs[0])
    return docs[0], platform


def _kubernetes_config() -> Any:
    """kfp-kubernetes' ``KubernetesExecutorConfig`` message class (vendored: the package needs the full SDK)."""
    name = "kfp_kubernetes_executor_config_pb2"
    if name not in sys.modules:
        path = FIXTURES / "kfp_kubernetes" / "kubernetes_executor_config_pb2.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name].KubernetesExecutorConfig


def _kubeflow_rules(spec: dict[str, Any]) -> None:
    assert spec["schemaVersion"] == "2.1.0"
    assert DNS_LABEL.match(spec["pipelineInfo"]["name"])
    components, executors = spec["components"], spec["deploymentSpec"]["executors"]
    root_inputs = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    tasks = spec["root"]["dag"]["tasks"]
    for name, task in tasks.items():
        assert DNS_LABEL.match(name) and task["taskInfo"]["name"] == name
        component = components[task["componentRef"]["name"]]
        executor = executors[component["executorLabel"]]["container"]
        deps = task.get("dependentTasks", [])
        assert set(deps) <= set(tasks) and name not in deps
        wanted = component.get("inputDefinitions", {}).get("parameters", {})
        given = task.get("inputs", {}).get("parameters", {})
        assert set(given) == set(wanted), f"{name}: passes {sorted(given)}, its component takes {sorted(wanted)}"
        for value in given.values():
            if "componentInputParameter" in value:
                assert value["componentInputParameter"] in root_inputs
            else:
                producer = value["taskOutputParameter"]["producerTask"]
                assert producer in deps, f"{name} reads {producer}'s output without depending on it"
                outputs = components[tasks[producer]["componentRef"]["name"]]["outputDefinitions"]["parameters"]
                assert value["taskOutputParameter"]["outputParameterKey"] in outputs
        text = " ".join(executor["args"])
        assert set(re.findall(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}", text)) <= set(wanted)
        outputs = component.get("outputDefinitions", {}).get("parameters", {})
        assert set(re.findall(r"\{\{\$\.outputs\.parameters\['([^']+)'\]\.output_file\}\}", text)) <= set(outputs)
    _acyclic({n: t.get("dependentTasks", []) for n, t in tasks.items()})


def _acyclic(graph: dict[str, list[str]]) -> None:
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"dependency cycle: {' -> '.join((*path, node))}"
        if node not in done:
            for up in graph[node]:
                visit(up, (*path, node))
            done.add(node)

    for node in graph:
        visit(node, ())


def argo_steps(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """task name (as `mlnb run` takes it) -> {step, deps, container} of an Argo Workflow."""
    spec = doc["spec"]
    templates = {t["name"]: t for t in spec["templates"]}
    out = {}
    for task in templates[spec["entrypoint"]]["dag"]["tasks"]:
        container = templates[task["template"]]["container"]
        assert container["command"] == ["mlnb"] and container["args"][0] == "run"
        out[container["args"][1]] = {"step": task["name"], "deps": task.get("dependencies", []),
                                     "container": container, "template": templates[task["template"]]}
    return out


def kubeflow_steps(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """task name (as `mlnb run` takes it) -> {step, deps, container, task} of a KFP pipeline spec."""
    out = {}
    for name, task in spec["root"]["dag"]["tasks"].items():
        label = spec["components"][task["componentRef"]["name"]]["executorLabel"]
        container = spec["deploymentSpec"]["executors"][label]["container"]
        assert container["command"] == ["mlnb"] and container["args"][0] == "run"
        out[container["args"][1]] = {"step": name, "deps": task.get("dependentTasks", []), "container": container,
                                     "task": task, "executor": label}
    return out


def assert_same_dag(steps: dict[str, dict[str, Any]], upstream: dict[str, tuple[str, ...]], image: str) -> None:
    """Every task of the spec is a step running the image, every upstream edge a dependency, and no other."""
    assert set(steps) == set(upstream), f"steps {sorted(steps)} != tasks {sorted(upstream)}"
    for task, ups in upstream.items():
        assert sorted(steps[task]["deps"]) == sorted(steps[u]["step"] for u in ups), task
        assert steps[task]["container"]["image"] == image
        assert steps[task]["container"]["args"].count("--upstream") == len(ups)
        assert "--exchange" in steps[task]["container"]["args"]


def _diff(a: Any, b: Any, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in a.keys() | b.keys() for d in _diff(a.get(k), b.get(k), f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _diff(x, y, f"{where}[{i}]")]
    return [] if a == b and type(a) is type(b) else [f"{where}: {a!r} -> {b!r}"]


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")
