"""``mlnb deploy k8s``: Kubernetes manifests for the serving image, assembled and written offline.

One file, ``DIR/serving.yaml``: every object of the strategy as one multi-document YAML, in the order
``kubectl apply`` creates them (configuration first, the workload after the Services it is named in, the
autoscaler and disruption budget last). One file is written atomically, so a run leaves all of the manifests
or none, and a run with another strategy replaces the whole set rather than leaving a stale object beside it.

* ``rolling``: ConfigMap, Service, Deployment, HorizontalPodAutoscaler, PodDisruptionBudget
  (:mod:`mlnb.services.deploy_k8s`).
* ``canary``: ConfigMap, AnalysisTemplate, Services (clients', stable, canary), Rollout with weighted steps,
  HorizontalPodAutoscaler on the Rollout, PodDisruptionBudget (:mod:`mlnb.services.deploy_rollouts`).
* ``blue-green``: ConfigMap, AnalysisTemplate, Services (active, preview), Rollout with pre-promotion
  analysis, HorizontalPodAutoscaler on the Rollout, PodDisruptionBudget.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlnb.core.io import find_project_root
from mlnb.core.project import load_project
from mlnb.errors import UserInputError
from mlnb.services import deploy_k8s as k8s
from mlnb.services import deploy_rollouts as rollouts
from mlnb.services.export import to_yaml, write

FILENAME = "serving.yaml"


@dataclass(frozen=True)
class DeployResult:
    path: Path
    plan: k8s.DeployPlan
    objects: tuple[str, ...]  # Kind/name, in the file's order
    next_steps: tuple[str, ...]  # commands to run next


def resolve_model_uri(given: str | None, start: Path | None = None) -> str:
    """``given``, else the project's ``models:/<mlflow.model_name>@champion`` (the project at or above
    ``start``); what production serves is the registry alias ``champion``."""
    if given is not None:
        return given
    try:
        root = find_project_root(start)
    except UserInputError:
        raise UserInputError("--model-uri: not given, and no pipeline.yaml here to read mlflow.model_name "
                             "from") from None
    project = load_project(root)
    name = project.mlflow.get("model_name")
    if not isinstance(name, str) or not name:
        raise UserInputError(f"{project.env_path}: mlflow.model_name: not set, so pass --model-uri")
    return f"models:/{name}@champion"


def manifests(p: k8s.DeployPlan) -> list[dict[str, Any]]:
    """Every object of ``p``'s strategy, in apply order."""
    if p.request.strategy == k8s.ROLLING:
        return [k8s.config_map(p), k8s.service(p, p.name), k8s.deployment(p),
                k8s.autoscaler(p, "apps/v1", "Deployment"), k8s.disruption_budget(p)]
    return [k8s.config_map(p), rollouts.analysis_template(p), *(k8s.service(p, s) for s in rollouts.service_names(p)),
            rollouts.rollout(p), k8s.autoscaler(p, rollouts.API_VERSION, "Rollout"), k8s.disruption_budget(p)]


def deploy_k8s(request: k8s.DeployRequest, out: Path) -> DeployResult:
    """Check ``request``, lay out its manifests and write ``out/serving.yaml`` (nothing when a check fails)."""
    p = k8s.plan(request)
    docs = manifests(p)
    ns = f" -n {request.namespace}" if request.namespace else ""
    path = write(out, FILENAME, to_yaml(docs, _header(p, ns)))
    steps = [f"kubectl apply{ns} -f {path}"]
    if request.strategy == k8s.ROLLING:
        steps.append(f"kubectl rollout status{ns} deployment/{p.name}")
    else:
        steps.append(f"kubectl argo rollouts get rollout {p.name}{ns} --watch")
        if request.strategy == k8s.BLUE_GREEN and not request.auto_promote:
            steps.append(f"kubectl argo rollouts promote {p.name}{ns}   # once the preview "
                         f"(service {p.name}-preview) is checked")
    objects = tuple(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    return DeployResult(path, p, objects, tuple(steps))


def _header(p: k8s.DeployPlan, ns: str) -> list[str]:
    r = p.request
    lines = [f"Kubernetes manifests written by `mlnb deploy k8s --strategy {r.strategy}`: the serving image",
             f"{r.image} (`mlnb serve`) serving {r.model_uri}.", "Needs in the cluster:"]
    if r.tracking_secret:
        lines += [f"  - the Secret {r.tracking_secret}: MLflow's credentials (MLFLOW_TRACKING_USERNAME, ...), e.g.",
                  f"    kubectl create secret generic {r.tracking_secret}{ns} --from-env-file=FILE;"]
    if r.strategy != k8s.ROLLING:
        lines += ["  - the Argo Rollouts controller and its CRDs (Rollout, AnalysisTemplate);",
                  f"  - Prometheus at {p.prometheus_url}, scraping pods by their prometheus.io annotations and",
                  "    keeping pod labels as series labels (app_kubernetes_io_name, rollouts_pod_template_hash);"]
    lines.append("  - metrics-server, for the HorizontalPodAutoscaler.")
    if r.strategy != k8s.ROLLING and "@" in r.model_uri:
        lines += ["The pods follow the alias (mlnb serve hot-swaps every pod when it moves): the analysis covers",
                  "a new image or model URI; to roll a model version out step by step, pass --model-uri",
                  "models:/NAME/VERSION."]
    return [*lines, f"Apply: kubectl apply{ns} -f {FILENAME}"]
