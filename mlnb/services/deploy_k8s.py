"""``mlnb deploy k8s``: the request, its checks and the core Kubernetes objects of the serving image.

The serving image is the Dockerfile's ``serve`` target: ``ENTRYPOINT ["mlnb", "serve"]``, user 10001, port
8080, ``MLNB_MODEL_URI`` / ``MLNB_SERVE_HOST`` / ``MLNB_SERVE_PORT`` / ``MLFLOW_TRACKING_URI`` read from the
environment; ``/health`` (alive), ``/ready`` (model loaded and warmed, 503 once SIGTERM arrived), ``/metrics``
(Prometheus text) and ``/invocations``. The pod this module describes:

* the model URI and the tracking URI come from a ConfigMap (``envFrom``), the tracking server's credentials
  from a Secret named on the command line (``envFrom.secretRef``): no secret value is ever written;
* liveness ``/health``, readiness ``/ready``, a startup probe on ``/health`` that allows for the model's
  download and load (``mlnb serve`` binds only once the model is loaded);
* hardened: non-root 10001, read-only root filesystem, no privilege escalation, every capability dropped,
  seccomp ``RuntimeDefault``, no service account token; ``/tmp`` and the model cache
  (``/home/mlnb/.cache``) are ``emptyDir`` volumes, the only writable paths;
* draining: a ``preStop`` sleep keeps the pod serving while it is taken out of the Service's endpoints, then
  SIGTERM turns ``/ready`` to 503 and ``mlnb serve`` finishes the responses in flight (10 s at most), all
  within ``terminationGracePeriodSeconds``;
* a checksum of the ConfigMap's data on the pod template, so a new model URI rolls the pods (through the
  canary's analysis, with ``--strategy canary``).

:mod:`mlnb.services.deploy_rollouts` adds the Argo Rollouts objects, :mod:`mlnb.services.deploy` assembles
and writes them. Nothing here contacts a cluster or MLflow.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from mlnb.errors import UserInputError, redact
from mlnb.services.export import _IMAGE, _QUANTITY, _SUBDOMAIN, dns_label

ROLLING, CANARY, BLUE_GREEN = "rolling", "canary", "blue-green"
STRATEGIES = (ROLLING, CANARY, BLUE_GREEN)
TRACKING_SECRET = "mlflow-credentials"
DEFAULT_STEPS = "10,30,60"
# The prometheus-community chart installed as release `prometheus` in namespace `monitoring`: its
# `kubernetes-pods` job scrapes pods by the prometheus.io annotations and keeps their labels.
DEFAULT_PROMETHEUS = "http://prometheus-server.monitoring.svc"
PORT = 8080  # MLNB_SERVE_PORT of the image
UID = 10001  # the image's user
CACHE = "/home/mlnb/.cache"  # `mlnb serve` outside a project downloads to $XDG_CACHE_HOME/mlnb/serve
PRESTOP_SECONDS = 10  # time for the endpoints to drop the pod before it stops accepting
DRAIN_SECONDS = 10  # what `mlnb serve` gives responses in flight after SIGTERM
GRACE_SECONDS = PRESTOP_SECONDS + DRAIN_SECONDS + 10
CONFIG_HASH = "mlnb/config-sha256"  # pod template annotation: a changed ConfigMap rolls the pods

_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # DNS-1035 label: what a Service name must be
_NAME_MAX = 50  # room for the -canary, -stable, -preview, -config, -analysis suffixes
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]+")
_UNITS = {"m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
          "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60}


@dataclass(frozen=True)
class DeployRequest:
    """What ``mlnb deploy k8s`` was asked for (the CLI's options, unchecked)."""

    image: str
    model_uri: str  # resolved by the caller (default: the project's models:/<model_name>@champion)
    strategy: str = ROLLING
    name: str | None = None  # default: from the registered model's name
    namespace: str | None = None  # default: kubectl's current namespace
    tracking_uri: str | None = None
    tracking_secret: str = TRACKING_SECRET  # "": none
    config_map: str | None = None  # default: <name>-config
    replicas: int = 2
    min_replicas: int | None = None  # default: replicas
    max_replicas: int | None = None  # default: the larger of 5 and min_replicas
    target_cpu: int = 70  # HPA: average CPU utilisation, % of the request
    cpu: str = "250m"
    cpu_limit: str = "1"
    memory: str = "512Mi"
    memory_limit: str = "1Gi"
    canary_steps: str | None = None  # "10,30,60" (canary only)
    prometheus_url: str | None = None  # canary and blue-green
    max_error_rate: float = 0.01  # 5xx share of /invocations answers the analysis accepts
    max_p99_seconds: float = 0.5  # p99 latency of /invocations the analysis accepts
    auto_promote: bool = False  # blue-green: promote without `kubectl argo rollouts promote`
    challenger_traffic: float | None = None  # mlnb serve --challenger models:/NAME@challenger --traffic P
    shadow: bool = False  # ... --shadow (`mlnb canary start` sets the alias; the pods follow)


@dataclass(frozen=True)
class DeployPlan:
    """A checked request with every name chosen."""

    request: DeployRequest
    name: str
    config_map: str
    version: str  # app.kubernetes.io/version: the image's tag (or digest)
    min_replicas: int
    max_replicas: int
    steps: tuple[int, ...]  # canary weights
    prometheus_url: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def selector(self) -> dict[str, str]:
        """What every Service, the PDB and the workload select pods by (never the version: selectors stay)."""
        return {"app.kubernetes.io/name": self.name}

    @property
    def labels(self) -> dict[str, str]:
        return {**self.selector, "app.kubernetes.io/version": self.version,
                "app.kubernetes.io/component": "model-server", "app.kubernetes.io/managed-by": "mlnb"}

    @property
    def analysis_template(self) -> str:
        return f"{self.name}-analysis"

    def metadata(self, name: str) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name}
        if self.request.namespace:
            meta["namespace"] = self.request.namespace
        meta["labels"] = dict(self.labels)
        return meta


def plan(r: DeployRequest) -> DeployPlan:
    """Check ``r`` (one :class:`UserInputError` line naming the option and value) and name everything."""
    if r.strategy not in STRATEGIES:
        raise UserInputError(f"--strategy {r.strategy!r}: expected one of {', '.join(STRATEGIES)}")
    version = _check_image(r.image)
    _check_uris(r)
    name = r.name if r.name is not None else default_name(r.model_uri)
    if not _NAME.fullmatch(name) or len(name) > _NAME_MAX:
        raise UserInputError(f"--name {name!r}: expected a DNS-1035 label of at most {_NAME_MAX} characters "
                             "(lower-case letters, digits and '-', starting with a letter)")
    for option, value, limit in (("--namespace", r.namespace, 63), ("--tracking-secret", r.tracking_secret or None,
                                                                    253), ("--config-map", r.config_map, 253)):
        pattern = _NAME if option == "--namespace" else _SUBDOMAIN
        if value is not None and (not pattern.fullmatch(value) or len(value) > limit):
            raise UserInputError(f"{option} {value!r}: not a Kubernetes name (lower-case letters, digits, '-')")
    _check_resources(r)
    low, high = _check_replicas(r)
    warnings = []
    steps = parse_steps(r.canary_steps if r.canary_steps is not None else DEFAULT_STEPS)
    url = r.prometheus_url if r.prometheus_url is not None else DEFAULT_PROMETHEUS
    _check_url("--prometheus-url", url, schemes=("http://", "https://"))
    if not 0 < r.max_error_rate <= 1:
        raise UserInputError(f"--max-error-rate {r.max_error_rate}: expected a fraction in (0, 1], e.g. 0.01")
    if not 0 < r.max_p99_seconds <= 60:
        raise UserInputError(f"--max-p99 {r.max_p99_seconds}: expected seconds in (0, 60], e.g. 0.5")
    for given, option, strategies in ((r.canary_steps is not None, "--canary-steps", (CANARY,)),
                                      (r.prometheus_url is not None, "--prometheus-url", (CANARY, BLUE_GREEN)),
                                      (r.auto_promote, "--auto-promote", (BLUE_GREEN,))):
        if given and r.strategy not in strategies:
            warnings.append(f"{option} goes with --strategy {' or '.join(strategies)}: ignored")
    warnings += _tracking_warnings(r)
    challenger_uri(r)
    return DeployPlan(r, name, r.config_map or f"{name}-config", version, low, high, steps, url, tuple(warnings))


def challenger_uri(r: DeployRequest) -> str | None:
    """``models:/NAME@challenger`` when the pods serve a challenger beside the model (checked), else None."""
    if r.challenger_traffic is None and not r.shadow:
        return None
    if r.challenger_traffic is not None and r.shadow:
        raise UserInputError("--challenger-traffic and --shadow: one or the other")
    if r.challenger_traffic is not None and not 0 < r.challenger_traffic <= 100:
        raise UserInputError(f"--challenger-traffic {r.challenger_traffic:g}: expected a percentage in (0, 100]")
    match = re.match(r"^models:/([^/@]+)[/@]", r.model_uri)
    if not match:
        raise UserInputError(f"--model-uri {r.model_uri}: a challenger is the registered model's `challenger` "
                             "alias, so the model must be models:/NAME@ALIAS or models:/NAME/VERSION")
    return f"models:/{match.group(1)}@challenger"


def default_name(model_uri: str) -> str:
    """The registered model's name as a DNS-1035 label (``models:/Breast_Cancer@champion`` ->
    ``breast-cancer``); ``mlnb-serve`` for a model that is not in a registry."""
    match = re.match(r"^models:/([^/@]+)", model_uri)
    name = dns_label(match.group(1), _NAME_MAX) if match else ""
    if name and not name[0].isalpha():
        name = dns_label(f"model-{name}", _NAME_MAX)
    return name or "mlnb-serve"


def parse_steps(text: str) -> tuple[int, ...]:
    """``10,30,60`` -> (10, 30, 60): canary weights in %, each 1-99 and rising (100 is the last, implied)."""
    try:
        steps = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UserInputError(f"--canary-steps {text!r}: expected rising percentages separated by commas, "
                             "e.g. 10,30,60") from None
    bad = next((s for s in steps if not 1 <= s <= 99), None)
    if bad is not None:
        raise UserInputError(f"--canary-steps {text!r}: {bad} is not a weight between 1 and 99 "
                             "(100% is the step after the last, implied)")
    fall = next((i for i in range(1, len(steps)) if steps[i] <= steps[i - 1]), None)
    if fall is not None:
        raise UserInputError(f"--canary-steps {text!r}: weights must rise ({steps[fall - 1]} then {steps[fall]})")
    if len(steps) > 10:
        raise UserInputError(f"--canary-steps {text!r}: at most 10 steps")
    return steps


def quantity(option: str, value: str) -> float:
    """A Kubernetes quantity (``500m``, ``2``, ``512Mi``) as a number; one line naming ``option`` if not one."""
    if not _QUANTITY.fullmatch(value):
        raise UserInputError(f"{option} {value!r}: expected a Kubernetes quantity such as 500m, 2, 512Mi, 2Gi")
    number = re.match(r"^[0-9.]+", value)
    assert number is not None  # the pattern starts with digits
    amount = float(number.group(0)) * _UNITS[value[number.end():]]
    if amount <= 0:
        raise UserInputError(f"{option} {value!r}: must be more than 0")
    return amount


def _check_image(image: str) -> str:
    match = _IMAGE.fullmatch(image)
    if not match or len(image) > 512:
        raise UserInputError(f"--image {image!r}: not an image reference (REGISTRY/NAME:TAG or NAME@sha256:DIGEST, "
                             "lower-case name)")
    tag, digest = match.group("tag"), match.group("digest")
    if not digest and tag in (None, "latest"):
        raise UserInputError(f"--image {image!r}: pin a tag or a digest (REGISTRY/NAME:TAG, NAME@sha256:...): with "
                             "latest, applying a new build changes nothing and pods may run different builds")
    version = tag or digest.replace(":", "-")
    return _LABEL_VALUE.sub("-", version)[:63].strip("._-") or "unknown"


def _check_uris(r: DeployRequest) -> None:
    uri = r.model_uri
    if not uri or any(c.isspace() for c in uri) or "{{" in uri or len(uri) > 1000:
        raise UserInputError(f"--model-uri {uri!r}: expected models:/NAME@ALIAS, models:/NAME/VERSION, runs:/... "
                             "or a path inside the image, without spaces")
    if redact(uri) != uri:
        raise UserInputError(f"--model-uri {redact(uri)}: holds credentials, which would be written into the "
                             "manifests: put them in the secret (--tracking-secret)")
    if r.tracking_uri is not None:
        _check_url("--tracking-uri", r.tracking_uri)
    if uri.startswith(("models:/", "runs:/")) and not r.tracking_uri and not r.tracking_secret:
        raise UserInputError(f"--model-uri {uri}: a registry or run URI needs the tracking server: pass "
                             "--tracking-uri (or a --tracking-secret holding MLFLOW_TRACKING_URI)")


def _check_url(option: str, url: str, schemes: tuple[str, ...] = ()) -> None:
    if not url.strip() or any(c.isspace() for c in url) or "{{" in url:
        raise UserInputError(f"{option} {url!r}: expected a URI without spaces or {{{{ }}}} placeholders")
    if redact(url) != url:
        raise UserInputError(f"{option} {redact(url)}: holds credentials, which would be written into the "
                             "manifests: put them in the secret (--tracking-secret)")
    if schemes and not url.startswith(schemes):
        raise UserInputError(f"{option} {url!r}: expected an {' or '.join(s[:-3] for s in schemes)} URL")


def _tracking_warnings(r: DeployRequest) -> list[str]:
    if not r.model_uri.startswith(("models:/", "runs:/")):
        return []
    if not r.tracking_uri:
        return [f"no --tracking-uri: the pods need MLFLOW_TRACKING_URI in the secret {r.tracking_secret} to "
                f"resolve {r.model_uri}"]
    if not r.tracking_uri.startswith(("http://", "https://", "databricks")):
        return [f"--tracking-uri {r.tracking_uri}: a store inside each pod's own filesystem; use a tracking "
                "server every pod reaches (http(s)://)"]
    return []


def _check_resources(r: DeployRequest) -> None:
    for request, limit, option in ((r.cpu, r.cpu_limit, "--cpu"), (r.memory, r.memory_limit, "--memory")):
        if quantity(option, request) > quantity(f"{option}-limit", limit):
            raise UserInputError(f"{option}-limit {limit!r}: below the request {option} {request}")


def _check_replicas(r: DeployRequest) -> tuple[int, int]:
    low = r.min_replicas if r.min_replicas is not None else r.replicas
    high = r.max_replicas if r.max_replicas is not None else max(5, low)
    for option, value in (("--replicas", r.replicas), ("--min-replicas", low), ("--max-replicas", high)):
        if not 1 <= value <= 1000:
            raise UserInputError(f"{option} {value}: expected 1 to 1000")
    if low > high:
        raise UserInputError(f"--min-replicas {low}: above --max-replicas {high}")
    if not low <= r.replicas <= high:
        raise UserInputError(f"--replicas {r.replicas}: outside --min-replicas {low} .. --max-replicas {high} "
                             "(the autoscaler would change it at once)")
    if not 1 <= r.target_cpu <= 100:
        raise UserInputError(f"--target-cpu {r.target_cpu}: expected a percentage of the CPU request, 1 to 100")
    return low, high


# --- the objects ---------------------------------------------------------------------------------------

def config_map(p: DeployPlan) -> dict[str, Any]:
    """The model URI and the tracking URI (no credentials: those are in the Secret)."""
    data = {"MLNB_MODEL_URI": p.request.model_uri}
    if p.request.tracking_uri:
        data["MLFLOW_TRACKING_URI"] = p.request.tracking_uri
    challenger = challenger_uri(p.request)
    if challenger:  # read by `mlnb serve` (its --challenger/--traffic/--shadow options' variables)
        data["MLNB_CHALLENGER_URI"] = challenger
        if p.request.shadow:
            data["MLNB_SHADOW"] = "1"
        else:
            data["MLNB_CHALLENGER_TRAFFIC"] = f"{p.request.challenger_traffic:g}"
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": p.metadata(p.config_map), "data": data}


def pod_template(p: DeployPlan) -> dict[str, Any]:
    """The serving pod (see the module's docstring)."""
    r = p.request
    digest = hashlib.sha256(json.dumps(config_map(p)["data"], sort_keys=True).encode()).hexdigest()
    env_from: list[dict[str, Any]] = [{"configMapRef": {"name": p.config_map}}]
    if r.tracking_secret:
        env_from.append({"secretRef": {"name": r.tracking_secret}})
    http_get = {"port": "http", "scheme": "HTTP"}
    container = {
        "name": "serve",
        "image": r.image,
        "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": [{"name": "MLNB_SERVE_HOST", "value": "0.0.0.0"}, {"name": "MLNB_SERVE_PORT", "value": str(PORT)},
                {"name": "XDG_CACHE_HOME", "value": CACHE}],
        "envFrom": env_from,
        "resources": {"requests": {"cpu": r.cpu, "memory": r.memory},
                      "limits": {"cpu": r.cpu_limit, "memory": r.memory_limit}},
        "startupProbe": {"httpGet": {"path": "/health", **http_get}, "periodSeconds": 5, "timeoutSeconds": 3,
                         "failureThreshold": 60},  # up to 5 minutes to download, verify and load the model
        "livenessProbe": {"httpGet": {"path": "/health", **http_get}, "periodSeconds": 10, "timeoutSeconds": 3,
                          "failureThreshold": 3},
        "readinessProbe": {"httpGet": {"path": "/ready", **http_get}, "periodSeconds": 5, "timeoutSeconds": 3,
                           "failureThreshold": 2},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, {"name": "model-cache", "mountPath": CACHE}],
    }
    spec = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": GRACE_SECONDS,
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID, "fsGroup": UID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "model-cache", "emptyDir": {}}],
    }
    annotations = {CONFIG_HASH: digest, "prometheus.io/scrape": "true", "prometheus.io/port": str(PORT),
                   "prometheus.io/path": "/metrics"}
    return {"metadata": {"labels": dict(p.labels), "annotations": annotations}, "spec": spec}


def deployment(p: DeployPlan) -> dict[str, Any]:
    spec = {"replicas": p.request.replicas, "revisionHistoryLimit": 5, "progressDeadlineSeconds": 600,
            "minReadySeconds": 5, "selector": {"matchLabels": dict(p.selector)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": pod_template(p)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": p.metadata(p.name), "spec": spec}


def service(p: DeployPlan, name: str) -> dict[str, Any]:
    """A ClusterIP Service on port 80 to the pods' ``http`` port (Argo Rollouts narrows the selector of the
    ones it manages to one ReplicaSet)."""
    spec = {"type": "ClusterIP", "selector": dict(p.selector),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
    return {"apiVersion": "v1", "kind": "Service", "metadata": p.metadata(name), "spec": spec}


def autoscaler(p: DeployPlan, api_version: str, kind: str) -> dict[str, Any]:
    spec = {"scaleTargetRef": {"apiVersion": api_version, "kind": kind, "name": p.name},
            "minReplicas": p.min_replicas, "maxReplicas": p.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": p.request.target_cpu}}}]}
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": p.metadata(p.name),
            "spec": spec}


def disruption_budget(p: DeployPlan) -> dict[str, Any]:
    """At most one pod evicted at a time (a ``minAvailable`` would block node drains at one replica)."""
    spec = {"maxUnavailable": 1, "selector": {"matchLabels": dict(p.selector)}}
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": p.metadata(p.name), "spec": spec}
