"""Offline validation of what ``mlnb deploy k8s`` writes.

* Kubernetes' own objects (ConfigMap, Service, Deployment, HorizontalPodAutoscaler, PodDisruptionBudget)
  with ``kubernetes-validate`` in strict mode (its bundled schemas of Kubernetes :data:`K8S_VERSION`:
  unknown fields and wrong types are errors, as ``kubectl apply``'s strict field validation makes them).
* Argo Rollouts' ``Rollout`` and ``AnalysisTemplate`` with ``jsonschema`` against the schemas in
  ``tests/fixtures/argo_rollouts`` (transcribed from the CRDs; README there), the Rollout's pod template
  with Kubernetes' strict ``PodTemplateSpec`` and every ``metadata`` with Kubernetes' ``ObjectMeta``.
* :func:`check_references`: what no schema says (selectors that select the pods, Services, templates and
  ConfigMaps that exist under the names used, ports named by the probes, label syntax, no Secret written).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.conftest import FIXTURES

K8S_VERSION = "1.30.0"  # the Kubernetes release whose schemas every core object is validated against
CORE = {"ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
ARGO = {"Rollout": "rollout", "AnalysisTemplate": "analysistemplate"}
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")


class Invalid(AssertionError):
    """A manifest a schema refuses: ``Kind/name: path: message``."""


def read(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


@functools.cache
def argo_schema(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "argo_rollouts" / f"{name}.schema.json").read_text(encoding="utf-8"))


def validate(doc: dict[str, Any]) -> None:
    """``doc`` against its kind's schema; :class:`Invalid` if refused (or of a kind mlnb should not write)."""
    kind = doc.get("kind")
    where = f"{kind}/{doc.get('metadata', {}).get('name')}"
    if kind in CORE:
        _k8s(doc, where)
    elif kind in ARGO:
        try:
            jsonschema.validate(doc, argo_schema(ARGO[kind]), cls=jsonschema.Draft202012Validator)
        except jsonschema.ValidationError as exc:
            raise Invalid(f"{where}: {'.'.join(map(str, exc.absolute_path))}: {exc.message}") from None
        _k8s({"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}, f"{where} metadata")
        if kind == "Rollout":
            _k8s({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"},
                  "template": doc["spec"]["template"]}, f"{where} spec.template")
    else:
        raise Invalid(f"{where}: a kind mlnb deploy k8s does not write")


def _k8s(doc: dict[str, Any], where: str) -> None:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise Invalid(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}") from None


def validate_all(docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        validate(doc)
    check_references(docs)


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def _subset(small: dict[str, str], big: dict[str, str]) -> bool:
    return all(big.get(k) == v for k, v in small.items())


def check_references(docs: list[dict[str, Any]]) -> None:
    """The rules a schema cannot express, for one strategy's set of objects."""
    kinds = [d["kind"] for d in docs]
    assert "Secret" not in kinds, "a Secret was written: credentials come from the cluster, by name"
    assert len({(d["kind"], d["metadata"]["name"]) for d in docs}) == len(docs), "a kind/name twice"
    assert len({d["metadata"].get("namespace") for d in docs}) == 1, "objects in different namespaces"
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "mlnb" and labels["app.kubernetes.io/version"]
        assert all(_LABEL_VALUE.match(v) and len(v) <= 63 for v in labels.values()), labels
        assert len(d["metadata"]["name"]) <= 63 and _DNS_LABEL.match(d["metadata"]["name"])
    workloads = [d for d in docs if d["kind"] in ("Deployment", "Rollout")]
    assert len(workloads) == 1, kinds
    work = workloads[0]
    template = work["spec"]["template"]
    pod_labels = template["metadata"]["labels"]
    assert _subset(work["spec"]["selector"]["matchLabels"], pod_labels), "the selector misses the pods"
    pod = template["spec"]
    (container,) = pod["containers"]
    ports = {p["name"] for p in container["ports"]}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in ports
    assert {m["name"] for m in container["volumeMounts"]} <= {v["name"] for v in pod["volumes"]}
    maps, services = by_kind(docs, "ConfigMap"), by_kind(docs, "Service")
    for source in container["envFrom"]:
        if "configMapRef" in source:
            assert source["configMapRef"]["name"] in maps
    for svc in services.values():
        assert _subset(svc["spec"]["selector"], pod_labels), f"Service {svc['metadata']['name']} selects no pod"
        assert all(p["targetPort"] in ports or p["targetPort"] == container["ports"][0]["containerPort"]
                   for p in svc["spec"]["ports"])
    (hpa,) = by_kind(docs, "HorizontalPodAutoscaler").values()
    ref = hpa["spec"]["scaleTargetRef"]
    assert (ref["apiVersion"], ref["kind"], ref["name"]) == (work["apiVersion"], work["kind"],
                                                           work["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] <= work["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    (pdb,) = by_kind(docs, "PodDisruptionBudget").values()
    assert _subset(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    if work["kind"] == "Rollout":
        _check_rollout(work, services, by_kind(docs, "AnalysisTemplate"))


def _check_rollout(ro: dict[str, Any], services: dict[str, Any], templates: dict[str, Any]) -> None:
    strategy = ro["spec"]["strategy"]
    analyses = []
    if "canary" in strategy:
        canary = strategy["canary"]
        assert canary["canaryService"] in services and canary["stableService"] in services
        assert canary["canaryService"] != canary["stableService"]
        weights = [s["setWeight"] for s in canary["steps"] if "setWeight" in s]
        assert weights == sorted(set(weights)) and all(0 < w < 100 for w in weights), weights
        analyses = [s["analysis"] for s in canary["steps"] if "analysis" in s]
        assert "analysis" in canary["steps"][-1], "the last weight is analysed before 100%"
        for s in canary["steps"]:
            if "pause" in s:
                assert isinstance(s["pause"]["duration"], int) or _GO_DURATION.match(s["pause"]["duration"])
    else:
        bg = strategy["blueGreen"]
        assert bg["activeService"] in services and bg["previewService"] in services
        assert bg["activeService"] != bg["previewService"]
        analyses = [bg["prePromotionAnalysis"]]
    assert analyses, "no analysis"
    for analysis in analyses:
        for ref in analysis["templates"]:
            assert ref["templateName"] in templates, f"no AnalysisTemplate {ref['templateName']}"
            template = templates[ref["templateName"]]
            wanted = {a["name"] for a in template["spec"].get("args", []) if "value" not in a}
            assert wanted <= {a["name"] for a in analysis.get("args", [])}, "an argument without a value"
    for template in templates.values():
        declared = {a["name"] for a in template["spec"].get("args", [])}
        for metric in template["spec"]["metrics"]:
            assert _GO_DURATION.match(metric["interval"])
            assert metric["successCondition"] and metric["failureCondition"]
            used = set(re.findall(r"\{\{\s*args\.([-\w]+)\s*\}\}", json.dumps(metric)))
            assert used <= declared, f"{metric['name']}: undeclared arguments {used - declared}"


def mutated(doc: dict[str, Any], path: str, value: Any = None, rename: str | None = None) -> dict[str, Any]:
    """A copy of ``doc`` with the field at dotted ``path`` (list indexes as numbers) set to ``value``, or
    renamed to ``rename`` (its value kept)."""
    out = copy.deepcopy(doc)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = out
    for key in parents:
        node = node[key]
    if rename is not None:
        node[rename] = node.pop(last)
    else:
        node[last] = value
    return out
