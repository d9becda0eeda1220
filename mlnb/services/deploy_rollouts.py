"""``mlnb deploy k8s --strategy canary|blue-green``: the Argo Rollouts objects (``argoproj.io/v1alpha1``).

* ``Rollout``: the pod template of :func:`mlnb.services.deploy_k8s.pod_template` with ``strategy.canary``
  (per weight: ``setWeight``, a ``pause`` for traffic to reach the new pods, then an ``analysis`` step) or
  ``strategy.blueGreen`` (``activeService``/``previewService``, ``prePromotionAnalysis``, promotion by hand
  unless ``--auto-promote``). Without a traffic router the canary's share of requests is its share of pods.
* ``AnalysisTemplate``: two Prometheus metrics over ``mlnb serve``'s own series (:mod:`mlnb.serving.metrics`),
  restricted to the new ReplicaSet's pods: the share of ``/invocations`` answers that are 5xx
  (``mlnb_serve_requests_total`` by ``status``) and the p99 latency of ``/invocations``
  (``mlnb_serve_request_duration_seconds`` histogram). A measurement over the threshold fails
  (``failureLimit`` allows one); one with no traffic (no series, NaN) is inconclusive, which pauses the
  rollout for a person (``kubectl argo rollouts promote``) instead of promoting a version nobody called.

The queries select pods by the labels Prometheus keeps when it scrapes pods by their ``prometheus.io/*``
annotations and maps pod labels to series labels (the prometheus-community chart's ``kubernetes-pods`` job):
``namespace``, ``app_kubernetes_io_name`` and ``rollouts_pod_template_hash``.
"""

from __future__ import annotations

from typing import Any

from mlnb.services.deploy_k8s import BLUE_GREEN, CANARY, DeployPlan, pod_template

API_VERSION = "argoproj.io/v1alpha1"
REQUESTS = "mlnb_serve_requests_total"  # counter: endpoint, status (mlnb.serving.metrics)
LATENCY_BUCKET = "mlnb_serve_request_duration_seconds_bucket"  # histogram of /invocations: le
INVOCATIONS = "/invocations"  # the endpoint label of scoring requests
WINDOW = "2m"
PAUSE_SECONDS = 60  # after each setWeight: traffic reaches the new pods before they are measured
HASH_ARG, NAMESPACE_ARG = "canary-hash", "namespace"


def rollout(p: DeployPlan) -> dict[str, Any]:
    """The ``Rollout`` of ``p``'s strategy."""
    strategy = {CANARY: _canary, BLUE_GREEN: _blue_green}[p.request.strategy](p)
    spec = {"replicas": p.request.replicas, "revisionHistoryLimit": 5, "progressDeadlineSeconds": 600,
            "minReadySeconds": 5, "selector": {"matchLabels": dict(p.selector)}, "template": pod_template(p),
            "strategy": strategy}
    return {"apiVersion": API_VERSION, "kind": "Rollout", "metadata": p.metadata(p.name), "spec": spec}


def service_names(p: DeployPlan) -> list[str]:
    """The Services of ``p``'s strategy, the one clients call first."""
    if p.request.strategy == CANARY:
        return [p.name, f"{p.name}-stable", f"{p.name}-canary"]
    return [p.name, f"{p.name}-preview"]


def _analysis(p: DeployPlan) -> dict[str, Any]:
    return {"templates": [{"templateName": p.analysis_template}],
            "args": [{"name": HASH_ARG, "valueFrom": {"podTemplateHashValue": "Latest"}},
                     {"name": NAMESPACE_ARG, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]}


def _canary(p: DeployPlan) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for weight in p.steps:
        steps += [{"setWeight": weight}, {"pause": {"duration": PAUSE_SECONDS}}, {"analysis": _analysis(p)}]
    _, stable, canary = service_names(p)
    return {"canary": {"stableService": stable, "canaryService": canary, "steps": steps}}


def _blue_green(p: DeployPlan) -> dict[str, Any]:
    active, preview = service_names(p)
    return {"blueGreen": {"activeService": active, "previewService": preview,
                          "autoPromotionEnabled": p.request.auto_promote, "scaleDownDelaySeconds": 30,
                          "prePromotionAnalysis": _analysis(p)}}


def queries(p: DeployPlan) -> dict[str, str]:
    """PromQL per metric: the new pods' 5xx share of ``/invocations`` and their p99 latency (seconds)."""
    pods = (f'namespace="{{{{args.{NAMESPACE_ARG}}}}}",app_kubernetes_io_name="{p.name}",'
            f'rollouts_pod_template_hash="{{{{args.{HASH_ARG}}}}}"')
    calls = f'{pods},endpoint="{INVOCATIONS}"'
    errors = f'sum(rate({REQUESTS}{{{calls},status=~"5.."}}[{WINDOW}]))'
    total = f"sum(rate({REQUESTS}{{{calls}}}[{WINDOW}]))"
    # a challenger's shadow copies (label variant, when served) are timed apart from the answers
    latency = f'sum by (le) (rate({LATENCY_BUCKET}{{{pods},variant!="challenger"}}[{WINDOW}]))'
    return {"error-rate": f"({errors} or vector(0)) / {total}",  # no 5xx series yet: 0 errors, not no data
            "latency-p99": f"histogram_quantile(0.99, {latency})"}


def analysis_template(p: DeployPlan) -> dict[str, Any]:
    limits = {"error-rate": p.request.max_error_rate, "latency-p99": p.request.max_p99_seconds}
    metrics = []
    for name, query in queries(p).items():
        limit = limits[name]
        metrics.append({
            "name": name, "interval": "1m", "count": 3, "failureLimit": 1,
            # neither condition (no traffic: no sample or NaN) = inconclusive: the rollout pauses for a person
            "successCondition": f"len(result) > 0 && !isNaN(result[0]) && result[0] <= {limit}",
            "failureCondition": f"len(result) > 0 && result[0] > {limit}",
            "provider": {"prometheus": {"address": p.prometheus_url, "query": query}},
        })
    spec = {"args": [{"name": HASH_ARG}, {"name": NAMESPACE_ARG}], "metrics": metrics}
    return {"apiVersion": API_VERSION, "kind": "AnalysisTemplate", "metadata": p.metadata(p.analysis_template),
            "spec": spec}
