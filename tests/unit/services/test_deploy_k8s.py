"""``mlnb deploy k8s`` (mlnb.services.deploy): every strategy's manifests valid for Kubernetes' strict schemas
and Argo Rollouts' CRD schemas (tests/k8s_checks.py), the validation proven not to be a no-op (a wrong field
name and a wrong type refused for every kind), the pod hardened and draining, the analysis querying series
``mlnb serve`` really exports, and bad requests refused in one line with nothing written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlnb.errors import UserInputError
from mlnb.services import deploy, deploy_k8s, deploy_rollouts
from mlnb.services.deploy_k8s import DeployRequest
from mlnb.serving.metrics import Metrics
from tests import k8s_checks as check

IMAGE = "registry.example.com:5000/acme/serving:1.4.2"
MODEL = "models:/Breast_Cancer-Classifier@champion"
KINDS = {
    "rolling": ["ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"],
    "canary": ["ConfigMap", "AnalysisTemplate", "Service", "Service", "Service", "Rollout", "HorizontalPodAutoscaler",
               "PodDisruptionBudget"],
    "blue-green": ["ConfigMap", "AnalysisTemplate", "Service", "Service", "Rollout", "HorizontalPodAutoscaler",
                   "PodDisruptionBudget"],
}


def _request(**changes: Any) -> DeployRequest:
    fields: dict[str, Any] = {"image": IMAGE, "model_uri": MODEL, "tracking_uri": "https://mlflow.example.com",
                              "namespace": "ml-serving", **changes}
    return DeployRequest(**fields)


def _docs(strategy: str, **changes: Any) -> list[dict[str, Any]]:
    return deploy.manifests(deploy_k8s.plan(_request(strategy=strategy, **changes)))


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def _pod(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] in ("Deployment", "Rollout"))["spec"]["template"]


@pytest.mark.parametrize("strategy", deploy_k8s.STRATEGIES)
def test_each_strategy_writes_one_valid_file(tmp_path: Path, strategy: str) -> None:
    result = deploy.deploy_k8s(_request(strategy=strategy), tmp_path / "k8s")
    assert result.path == tmp_path / "k8s" / "serving.yaml"
    assert sorted(p.name for p in (tmp_path / "k8s").iterdir()) == ["serving.yaml"]  # no temp file left
    docs = check.read(result.path)
    assert [d["kind"] for d in docs] == KINDS[strategy]
    check.validate_all(docs)
    assert result.objects == tuple(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    assert {d["metadata"]["namespace"] for d in docs} == {"ml-serving"}
    assert result.next_steps[0] == f"kubectl apply -n ml-serving -f {result.path}"
    assert result.plan.warnings == ()
    text = result.path.read_text()
    assert text.startswith("# Kubernetes manifests written by `mlnb deploy k8s")


def test_names_and_labels() -> None:
    docs = _docs("canary")
    assert {d["metadata"]["name"] for d in docs} == {"breast-cancer-classifier", "breast-cancer-classifier-config",
                                                     "breast-cancer-classifier-analysis",
                                                     "breast-cancer-classifier-stable",
                                                     "breast-cancer-classifier-canary"}
    labels = _one(docs, "Rollout")["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/name": "breast-cancer-classifier", "app.kubernetes.io/version": "1.4.2",
                      "app.kubernetes.io/component": "model-server", "app.kubernetes.io/managed-by": "mlnb"}
    assert _one(docs, "Rollout")["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name":
                                                                       "breast-cancer-classifier"}
    digest = "ghcr.io/acme/serving@sha256:" + "ab" * 32
    assert deploy_k8s.plan(_request(image=digest)).version == ("sha256-" + "ab" * 32)[:63]
    assert deploy_k8s.default_name("models:/2024_model/3") == "model-2024-model"
    assert deploy_k8s.default_name("/home/mlnb/serving") == "mlnb-serve"


def test_the_pod_is_hardened_reads_its_config_by_name_and_drains() -> None:
    docs = _docs("rolling")
    pod = _pod(docs)
    spec = pod["spec"]
    (c,) = spec["containers"]
    assert c["image"] == IMAGE and c["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert {e["name"]: e["value"] for e in c["env"]} == {"MLNB_SERVE_HOST": "0.0.0.0", "MLNB_SERVE_PORT": "8080",
                                                         "XDG_CACHE_HOME": "/home/mlnb/.cache"}
    assert c["envFrom"] == [{"configMapRef": {"name": "breast-cancer-classifier-config"}},
                            {"secretRef": {"name": "mlflow-credentials"}}]
    assert _one(docs, "ConfigMap")["data"] == {"MLNB_MODEL_URI": MODEL,
                                               "MLFLOW_TRACKING_URI": "https://mlflow.example.com"}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001 and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"} == spec["securityContext"]["seccompProfile"]
    assert spec["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert set(mounts) == {"/tmp", "/home/mlnb/.cache"}  # the only writable paths
    assert all("emptyDir" in v for v in spec["volumes"])
    assert c["startupProbe"]["httpGet"]["path"] == c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}
    sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    assert sleep + deploy_k8s.DRAIN_SECONDS < spec["terminationGracePeriodSeconds"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8080" and annotations["prometheus.io/path"] == "/metrics"
    strategy = _one(docs, "Deployment")["spec"]["strategy"]
    assert strategy["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert "mlflow-credentials" not in _one(docs, "ConfigMap")["data"].values()


def test_a_new_model_uri_rolls_the_pods_and_no_secret_means_no_secret_ref() -> None:
    one, two = _pod(_docs("canary")), _pod(_docs("canary", model_uri="models:/Breast_Cancer-Classifier/7"))
    key = deploy_k8s.CONFIG_HASH
    assert one["metadata"]["annotations"][key] != two["metadata"]["annotations"][key]
    baked = _pod(_docs("rolling", model_uri="/home/mlnb/serving", tracking_uri=None, tracking_secret=""))
    assert baked["spec"]["containers"][0]["envFrom"] == [{"configMapRef": {"name": "mlnb-serve-config"}}]


def test_canary_steps_services_and_autoscaler() -> None:
    docs = _docs("canary", canary_steps="5,25,50,75", replicas=4, max_replicas=8, target_cpu=60)
    canary = _one(docs, "Rollout")["spec"]["strategy"]["canary"]
    assert [s["setWeight"] for s in canary["steps"] if "setWeight" in s] == [5, 25, 50, 75]
    assert [next(iter(s)) for s in canary["steps"][:3]] == ["setWeight", "pause", "analysis"]
    assert (canary["stableService"], canary["canaryService"]) == ("breast-cancer-classifier-stable",
                                                                  "breast-cancer-classifier-canary")
    hpa = _one(docs, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                     "name": "breast-cancer-classifier"}
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (4, 8)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 60}
    check.validate_all(docs)


@pytest.mark.parametrize("auto", [False, True])
def test_blue_green_waits_for_a_person_unless_told(tmp_path: Path, auto: bool) -> None:
    result = deploy.deploy_k8s(_request(strategy="blue-green", auto_promote=auto), tmp_path)
    docs = check.read(result.path)
    bg = _one(docs, "Rollout")["spec"]["strategy"]["blueGreen"]
    assert bg["autoPromotionEnabled"] is auto
    assert (bg["activeService"], bg["previewService"]) == ("breast-cancer-classifier", "breast-cancer-classifier-preview")
    assert bg["prePromotionAnalysis"]["templates"] == [{"templateName": "breast-cancer-classifier-analysis"}]
    promote = [s for s in result.next_steps if "argo rollouts promote" in s]
    assert promote == ([] if auto else ["kubectl argo rollouts promote breast-cancer-classifier -n ml-serving   "
                                        "# once the preview (service breast-cancer-classifier-preview) is checked"])


# --- the analysis queries mlnb serve's own series -------------------------------------------------------

_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
# labels Prometheus adds when it scrapes a pod (namespace; pod labels, '.', '/' and '-' made '_')
SCRAPE_LABELS = {"namespace", "app_kubernetes_io_name", "rollouts_pod_template_hash"}


def _matches(labels: dict[str, str], op: str, want: str, name: str) -> bool:
    have = labels.get(name, "")
    return {"=": have == want, "!=": have != want, "=~": bool(re.fullmatch(want, have)),
            "!~": not re.fullmatch(want, have)}[op]


def test_the_analysis_queries_series_mlnb_serve_exports() -> None:
    p = deploy_k8s.plan(_request(strategy="canary"))
    metrics = Metrics("0")
    metrics.request("/invocations", 200)
    metrics.request("/invocations", 503)
    metrics.request("/health", 200)
    metrics.scored(0.004, 3)
    samples = [s for family in text_string_to_metric_families(metrics.render()) for s in family.samples]
    queries = deploy_rollouts.queries(p)
    assert set(queries) == {"error-rate", "latency-p99"}
    pod_labels = _pod(deploy.manifests(p))["metadata"]["labels"]
    scraped = {re.sub(r"[^a-zA-Z0-9_]", "_", k) for k in [*pod_labels, "rollouts-pod-template-hash"]}
    for name, query in queries.items():
        selectors = _SELECTOR.findall(re.sub(r"\{\{args\.([-\w]+)\}\}", r"ARG_\1", query))
        assert selectors, query
        for metric, matchers in selectors:
            found = _MATCHER.findall(matchers)
            assert {n for n, _, _ in found} >= SCRAPE_LABELS, f"{name}: not restricted to the new pods"
            assert {n for n, _, _ in found if n in SCRAPE_LABELS} - {"namespace"} <= scraped
            own = [(n, op, v) for n, op, v in found if n not in SCRAPE_LABELS]
            hits = [s for s in samples if s.name == metric and all(_matches(s.labels, op, v, n) for n, op, v in own)]
            assert hits, f"{name}: {metric}{{{matchers}}} matches no series mlnb serve exports"
    errors = [s for s in samples if s.name == deploy_rollouts.REQUESTS and s.labels["status"].startswith("5")]
    assert errors and all(s.labels["endpoint"] == deploy_rollouts.INVOCATIONS for s in errors)
    template = _one(deploy.manifests(p), "AnalysisTemplate")
    conditions = {m["name"]: (m["successCondition"], m["failureCondition"]) for m in template["spec"]["metrics"]}
    assert conditions["error-rate"] == ("len(result) > 0 && !isNaN(result[0]) && result[0] <= 0.01",
                                        "len(result) > 0 && result[0] > 0.01")


# --- the validation is not a no-op -----------------------------------------------------------------------

# (strategy, kind, a field renamed to a name the schema does not have, a field given a value of the wrong type)
BROKEN = [
    ("rolling", "ConfigMap", ("data", "datas"), ("data.MLNB_MODEL_URI", 5)),
    ("rolling", "Service", ("spec.ports.0.targetPort", "target_port"), ("spec.ports.0.port", "eighty")),
    ("rolling", "Deployment", ("spec.template.spec.containers.0.readinessProbe", "readinessProbes"),
     ("spec.replicas", "two")),
    ("rolling", "HorizontalPodAutoscaler", ("spec.minReplicas", "minReplica"), ("spec.maxReplicas", "5")),
    ("rolling", "PodDisruptionBudget", ("spec.maxUnavailable", "maxUnavailible"), ("spec.selector.matchLabels", "x")),
    ("canary", "Rollout", ("spec.strategy.canary.steps.0.setWeight", "setweight"),
     ("spec.strategy.canary.steps.0.setWeight", "10")),
    ("canary", "Rollout", ("spec.template.spec.containers.0.securityContext.readOnlyRootFilesystem",
                           "readOnlyRootFileSystem"), ("spec.template.spec.terminationGracePeriodSeconds", "30s")),
    ("canary", "Rollout", ("spec.template.metadata.labels", "label"), ("spec.template.metadata.labels", ["x"])),
    ("canary", "Rollout", ("metadata.labels", "lables"), ("metadata.name", 7)),
    ("blue-green", "Rollout", ("spec.strategy.blueGreen.autoPromotionEnabled", "autoPromote"),
     ("spec.strategy.blueGreen.autoPromotionEnabled", "false")),
    ("canary", "AnalysisTemplate", ("spec.metrics.0.successCondition", "successCriteria"),
     ("spec.metrics.0.failureLimit", True)),
    ("canary", "AnalysisTemplate", ("spec.metrics.0.provider.prometheus.address", "adress"),
     ("spec.metrics.0.provider.prometheus.query", 5)),
]


@pytest.mark.parametrize(("strategy", "kind", "rename", "retype"), BROKEN,
                         ids=[f"{b[1]}-{b[2][0].split('.')[-1]}" for b in BROKEN])
def test_a_wrong_field_name_and_a_wrong_type_are_refused(strategy: str, kind: str, rename: tuple[str, str],
                                                         retype: tuple[str, Any]) -> None:
    doc = _one(_docs(strategy), kind)
    check.validate(doc)  # the untouched object passes
    with pytest.raises(check.Invalid, match=re.escape(rename[1])):
        check.validate(check.mutated(doc, rename[0], rename=rename[1]))
    with pytest.raises(check.Invalid, match="is not of type|is not valid under any of the given schemas"):
        check.validate(check.mutated(doc, retype[0], retype[1]))


def test_the_reference_checks_are_not_a_no_op() -> None:
    docs = _docs("canary")
    for path, value in (("spec.strategy.canary.canaryService", "elsewhere"),
                        ("spec.strategy.canary.steps.2.analysis.templates.0.templateName", "missing"),
                        ("spec.selector.matchLabels", {"app.kubernetes.io/name": "other"})):
        broken = [check.mutated(d, path, value) if d["kind"] == "Rollout" else d for d in docs]
        with pytest.raises(AssertionError):
            check.check_references(broken)
    with pytest.raises(check.Invalid, match="does not write"):
        check.validate({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}})


# --- bad requests: one line, nothing written -------------------------------------------------------------

BAD = [
    ({"strategy": "linear"}, "--strategy 'linear'"),
    ({"image": "acme/serving"}, "--image 'acme/serving': pin a tag"),
    ({"image": "acme/serving:latest"}, "--image 'acme/serving:latest': pin a tag"),
    ({"image": "Acme/Serving:1"}, "--image 'Acme/Serving:1': not an image reference"),
    ({"strategy": "canary", "canary_steps": "10,5"}, "--canary-steps '10,5': weights must rise (10 then 5)"),
    ({"canary_steps": "120"}, "--canary-steps '120': 120 is not a weight between 1 and 99"),
    ({"canary_steps": "10,x"}, "--canary-steps '10,x': expected rising percentages"),
    ({"name": "9lives"}, "--name '9lives'"),
    ({"namespace": "Prod"}, "--namespace 'Prod'"),
    ({"replicas": 0}, "--replicas 0"),
    ({"min_replicas": 6, "replicas": 6, "max_replicas": 3}, "--min-replicas 6: above --max-replicas 3"),
    ({"replicas": 9, "min_replicas": 2}, "--replicas 9: outside --min-replicas 2 .. --max-replicas 5"),
    ({"cpu": "2", "cpu_limit": "500m"}, "--cpu-limit '500m': below the request --cpu 2"),
    ({"memory": "lots"}, "--memory 'lots'"),
    ({"target_cpu": 0}, "--target-cpu 0"),
    ({"tracking_uri": "https://bob:hunter2@mlflow.example.com"}, "--tracking-uri https://bob:***@mlflow.example.com"),
    ({"model_uri": "models:/m @champion"}, "--model-uri 'models:/m @champion'"),
    ({"tracking_uri": None, "tracking_secret": ""}, "--model-uri models:/Breast_Cancer-Classifier@champion: a registry"),
    ({"tracking_secret": "Mlflow_Creds"}, "--tracking-secret 'Mlflow_Creds'"),
    ({"prometheus_url": "prometheus:9090"}, "--prometheus-url 'prometheus:9090': expected an http or https URL"),
    ({"max_error_rate": 2.0}, "--max-error-rate 2.0"),
]


@pytest.mark.parametrize(("changes", "message"), BAD, ids=[m.split(" ")[0] + "-" + str(i) for i, (_, m) in
                                                           enumerate(BAD)])
def test_bad_requests_are_one_line_and_write_nothing(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(UserInputError) as caught:
        deploy.deploy_k8s(_request(**changes), tmp_path / "k8s")
    assert str(caught.value).startswith(message), str(caught.value)
    assert "\n" not in str(caught.value) and "hunter2" not in str(caught.value)
    assert not (tmp_path / "k8s").exists()


def test_a_failed_run_leaves_the_previous_file_whole(tmp_path: Path) -> None:
    first = deploy.deploy_k8s(_request(strategy="canary"), tmp_path)
    before = first.path.read_bytes()
    with pytest.raises(UserInputError):
        deploy.deploy_k8s(_request(strategy="canary", canary_steps="50,40"), tmp_path)
    assert first.path.read_bytes() == before
    deploy.deploy_k8s(_request(strategy="rolling"), tmp_path)  # another strategy replaces the whole set
    assert [d["kind"] for d in check.read(first.path)] == KINDS["rolling"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserInputError, match="is a file, not a directory"):
        deploy.deploy_k8s(_request(), tmp_path / "file")


def test_options_of_another_strategy_are_ignored_with_a_warning() -> None:
    p = deploy_k8s.plan(_request(strategy="rolling", canary_steps="20,40", auto_promote=True))
    assert p.warnings == ("--canary-steps goes with --strategy canary: ignored",
                          "--auto-promote goes with --strategy blue-green: ignored")
    assert deploy_k8s.plan(_request(tracking_uri=None)).warnings == (
        f"no --tracking-uri: the pods need MLFLOW_TRACKING_URI in the secret mlflow-credentials to resolve {MODEL}",)


def test_the_model_uri_defaults_to_the_projects_champion(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text("tasks: []\n")
    (tmp_path / "env.yaml").write_text("mlflow:\n  model_name: breast-cancer-classifier\n")
    (tmp_path / "sub").mkdir()
    assert deploy.resolve_model_uri(None, tmp_path / "sub") == "models:/breast-cancer-classifier@champion"
    assert deploy.resolve_model_uri("runs:/abc/model", tmp_path) == "runs:/abc/model"
    (tmp_path / "env.yaml").write_text("mlflow: {}\n")
    with pytest.raises(UserInputError, match="mlflow.model_name: not set, so pass --model-uri"):
        deploy.resolve_model_uri(None, tmp_path)
    with pytest.raises(UserInputError, match="--model-uri: not given"):
        deploy.resolve_model_uri(None, Path("/"))


def test_each_pod_can_serve_the_challenger_alias_beside_the_model() -> None:
    """What `mlnb serve` reads from the ConfigMap: `mlnb canary start` then moves the alias and the pods follow."""
    data = _one(_docs("rolling", challenger_traffic=10.0), "ConfigMap")["data"]
    assert data["MLNB_CHALLENGER_URI"] == "models:/Breast_Cancer-Classifier@challenger"
    assert data["MLNB_CHALLENGER_TRAFFIC"] == "10" and "MLNB_SHADOW" not in data
    shadow = _one(_docs("canary", shadow=True), "ConfigMap")["data"]
    assert shadow["MLNB_SHADOW"] == "1" and "MLNB_CHALLENGER_TRAFFIC" not in shadow
    assert "MLNB_CHALLENGER_URI" not in _one(_docs("rolling"), "ConfigMap")["data"]
    for changes, message in (({"challenger_traffic": 10.0, "shadow": True}, "one or the other"),
                             ({"challenger_traffic": 0.0}, "expected a percentage in (0, 100]"),
                             ({"challenger_traffic": 10.0, "model_uri": "/opt/model"}, "models:/NAME@ALIAS")):
        with pytest.raises(UserInputError, match=re.escape(message)):
            deploy_k8s.plan(_request(**changes))
