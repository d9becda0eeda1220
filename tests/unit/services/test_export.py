"""``mlnb export argo`` / ``mlnb export kubeflow`` on a small diamond pipeline: every task a step, every
upstream edge a dependency, the files valid for Argo's and KFP's own schemas (tests/export_checks.py); the
click group invoked directly (main.py registers it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from click.testing import CliRunner
from google.protobuf import json_format

from mlnb.cli.export import export_group
from mlnb.core.project import load_project
from mlnb.services import export_argo, export_kubeflow
from mlnb.services.export import ExportRequest, dns_label
from tests import export_checks as check
from tests.conftest import write_notebook

IMAGE = "registry.example.com:5000/acme/diamond:1.2.0"
# 1-get -> clean_data, 1-get -> Features.v2, (clean_data, Features.v2) -> report: names Ploomber takes as they are
UPSTREAM = {"1-get": (), "clean_data": ("1-get",), "Features.v2": ("1-get",), "report": ("clean_data", "Features.v2")}
STEPS = {"1-get": "task-1-get", "clean_data": "clean-data", "Features.v2": "features-v2", "report": "report"}


def _diamond(root: Path, extra: str = "") -> Path:
    for i, ups in enumerate(UPSTREAM.values()):
        write_notebook(root / f"notebooks/n{i}.ipynb", [
            ("params", f"upstream = {list(ups) or None!r}\nproduct = None\nC = 1.0\nmode = 'a'"),
            ("code", "from pathlib import Path\nPath(product['out']).write_text(str(C))"),
        ])
    (root / "env.yaml").write_text("train:\n  C: 1.0\n  mode: a\nmlflow:\n  experiment: diamond\n")
    (root / "pipeline.yaml").write_text("tasks:\n" + "".join(
        f"  - source: notebooks/n{i}.ipynb\n    name: {task}\n"
        f"    product: {{nb: 'products/{task}/nb.ipynb', out: 'products/{task}/out.txt'}}\n"
        f"    params: {{C: '{{{{train.C}}}}', mode: '{{{{train.mode}}}}'}}\n" for i, task in enumerate(UPSTREAM)) + extra)
    return root


@pytest.fixture
def diamond(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = _diamond(tmp_path / "My Diamond_Project")
    monkeypatch.chdir(root)  # the CLI makes the project root the working directory; restored afterwards
    return root


def _export(root: Path, kind: str, *args: str) -> Any:
    return CliRunner().invoke(export_group, [kind, "--image", IMAGE, "--out", str(root / "k8s"), *args])


def test_argo_workflow_has_a_step_per_task_and_a_dependency_per_edge(diamond: Path) -> None:
    ran = _export(diamond, "argo", "--tracking-uri", "https://mlflow.example.com", "--dvc-remote", "s3://b/dvc")
    assert ran.exit_code == 0, ran.output
    path = diamond / "k8s" / "workflow.yaml"
    assert ran.stdout.strip() == f"wrote {path} (4 steps, 4 dependencies)"
    doc = check.argo(check.read(path))
    steps = check.argo_steps(doc)
    check.assert_same_dag(steps, UPSTREAM, IMAGE)
    assert {t: s["step"] for t, s in steps.items()} == STEPS
    assert doc["metadata"]["generateName"] == "my-diamond-project-"
    report = steps["report"]
    assert report["container"]["args"] == [
        "run", "report", "--exchange",
        "--upstream", "{{inputs.parameters.upstream-clean-data}}",
        "--upstream", "{{inputs.parameters.upstream-features-v2}}",
        "--products-out", "/tmp/mlnb/products.json"]
    dag = {t["name"]: t for t in doc["spec"]["templates"][0]["dag"]["tasks"]}
    assert dag["report"]["arguments"]["parameters"] == [
        {"name": "upstream-clean-data", "value": "{{tasks.clean-data.outputs.parameters.products}}"},
        {"name": "upstream-features-v2", "value": "{{tasks.features-v2.outputs.parameters.products}}"}]
    for step in steps.values():
        assert step["template"]["outputs"]["parameters"] == [
            {"name": "products", "valueFrom": {"path": "/tmp/mlnb/products.json"}}]
        assert step["container"]["env"] == [{"name": "MLFLOW_TRACKING_URI", "value": "https://mlflow.example.com"},
                                            {"name": "MLNB_DVC_REMOTE", "value": "s3://b/dvc"}]
        assert step["container"]["envFrom"] == [{"secretRef": {"name": "mlflow-credentials"}},
                                                {"secretRef": {"name": "dvc-credentials"}}]
        assert step["container"]["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"}}
        assert step["template"]["retryStrategy"]["limit"] == 2
        assert "activeDeadlineSeconds" not in step["template"]


def test_kubeflow_pipeline_has_a_task_per_task_and_a_dependency_per_edge(diamond: Path) -> None:
    ran = _export(diamond, "kubeflow", "--dvc-remote", "gs://b/dvc", "--mlflow-secret-key", "MLFLOW_TRACKING_TOKEN")
    assert ran.exit_code == 0, ran.output
    path = diamond / "k8s" / "kubeflow-pipeline.yaml"
    assert ran.stdout.strip() == f"wrote {path} (4 steps, 4 dependencies)"
    assert "no --tracking-uri" in ran.stderr  # a warning, one line each
    spec, platform = check.kubeflow(check.read(path))
    steps = check.kubeflow_steps(spec)
    check.assert_same_dag(steps, UPSTREAM, IMAGE)
    assert {t: s["step"] for t, s in steps.items()} == STEPS
    assert spec["pipelineInfo"]["name"] == "my-diamond-project"
    report = steps["report"]
    assert report["container"]["args"] == [
        "run", "report", "--exchange",
        "--upstream", "{{$.inputs.parameters['upstream_clean_data']}}",
        "--upstream", "{{$.inputs.parameters['upstream_features_v2']}}",
        "--products-out", "{{$.outputs.parameters['products'].output_file}}"]
    assert report["task"]["inputs"]["parameters"]["upstream_features_v2"] == {
        "taskOutputParameter": {"outputParameterKey": "products", "producerTask": "features-v2"}}
    assert report["task"]["retryPolicy"]["maxRetryCount"] == 2
    assert platform is not None
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {s["executor"] for s in steps.values()}
    for step in steps.values():
        assert step["container"]["env"] == [{"name": "MLNB_DVC_REMOTE", "value": "gs://b/dvc"}]
        assert step["container"]["resources"] == {"resourceCpuRequest": "1", "resourceMemoryRequest": "2Gi"}
        secrets = {s["secretName"]: [k["secretKey"] for k in s["keyToEnv"]]
                   for s in executors[step["executor"]]["secretAsEnv"]}
        assert secrets == {"mlflow-credentials": ["MLFLOW_TRACKING_TOKEN"],
                           "dvc-credentials": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]}


def test_params_given_at_export_are_workflow_parameters_every_step_passes_on(diamond: Path) -> None:
    assert _export(diamond, "argo", "-p", "train.C=0.5", "-p", "train.mode=b").exit_code == 0
    doc = check.argo(check.read(diamond / "k8s/workflow.yaml"))
    assert doc["spec"]["arguments"]["parameters"] == [
        {"name": "train__C", "value": "0.5", "description": "-p train.C"},
        {"name": "train__mode", "value": "b", "description": "-p train.mode"}]
    for step in check.argo_steps(doc).values():
        args = step["container"]["args"]
        assert args[3:7] == ["-p", "train.C={{workflow.parameters.train__C}}",
                             "-p", "train.mode={{workflow.parameters.train__mode}}"]

    assert _export(diamond, "kubeflow", "-p", "train.C=0.5").exit_code == 0
    spec, _ = check.kubeflow(check.read(diamond / "k8s/kubeflow-pipeline.yaml"))
    assert spec["root"]["inputDefinitions"]["parameters"] == {
        "train__C": {"defaultValue": "0.5", "description": "-p train.C", "isOptional": True,
                     "parameterType": "STRING"}}
    for step in check.kubeflow_steps(spec).values():
        assert step["container"]["args"][3:5] == ["-p", "train.C={{$.inputs.parameters['param_train__C']}}"]
        assert step["task"]["inputs"]["parameters"]["param_train__C"] == {"componentInputParameter": "train__C"}


def test_options_reach_every_step(diamond: Path) -> None:
    common = ["--name", "nightly", "--cpu", "500m", "--memory", "4Gi", "--retries", "0", "--timeout", "600",
              "--mlflow-secret", "", "--dvc-secret", "minio", "-e", "pipeline.yaml"]
    assert _export(diamond, "argo", *common, "--namespace", "ml", "--service-account", "runner").exit_code == 0
    doc = check.argo(check.read(diamond / "k8s/workflow.yaml"))
    assert doc["metadata"]["generateName"] == "nightly-" and doc["metadata"]["namespace"] == "ml"
    assert doc["spec"]["serviceAccountName"] == "runner"
    for step in check.argo_steps(doc).values():
        assert step["container"]["resources"] == {"requests": {"cpu": "500m", "memory": "4Gi"}}
        assert step["container"]["envFrom"] == [{"secretRef": {"name": "minio"}}]
        assert step["container"]["args"][3:5] == ["--entry-point", "pipeline.yaml"]
        assert "retryStrategy" not in step["template"] and step["template"]["activeDeadlineSeconds"] == 600

    assert _export(diamond, "kubeflow", *common).exit_code == 0
    spec, platform = check.kubeflow(check.read(diamond / "k8s/kubeflow-pipeline.yaml"))
    assert spec["pipelineInfo"]["name"] == "nightly" and platform is not None
    for step in check.kubeflow_steps(spec).values():
        assert step["container"]["resources"] == {"resourceCpuRequest": "500m", "resourceMemoryRequest": "4Gi"}
        assert "retryPolicy" not in step["task"]
        config = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"][step["executor"]]
        assert config["activeDeadlineSeconds"] == "600"
        assert [s["secretName"] for s in config["secretAsEnv"]] == ["minio"]


def test_without_secrets_or_timeout_kubeflow_writes_no_platform_spec(diamond: Path) -> None:
    assert _export(diamond, "kubeflow", "--mlflow-secret", "", "--dvc-secret", "").exit_code == 0
    spec, platform = check.kubeflow(check.read(diamond / "k8s/kubeflow-pipeline.yaml"))
    assert platform is None and len(check.kubeflow_steps(spec)) == 4


@pytest.mark.parametrize(("args", "says"), [
    (["--image", "Acme/Diamond:1"], "--image 'Acme/Diamond:1': not an image reference"),
    (["--image", "acme/diamond:1 --privileged"], "not an image reference"),
    (["--image", "acme/diamond:{{x}}"], "not an image reference"),
    (["--name", "Nightly_Build"], "--name 'Nightly_Build': expected a DNS-1123 label"),
    (["--namespace", "ML"], "--namespace 'ML': not a Kubernetes name"),
    (["--mlflow-secret", "my secret"], "--mlflow-secret 'my secret': not a Kubernetes name"),
    (["--cpu", "lots"], "--cpu 'lots': expected a Kubernetes quantity"),
    (["--memory", "0Gi"], "--memory '0Gi': expected a Kubernetes quantity"),
    (["-p", "train.gamma=2"], "-p train.gamma: no key 'train.gamma' in env.yaml"),
    (["-p", "train.C=high"], "-p train.C='high': expected float"),
    (["--tracking-uri", "https://bob:hunter2@mlflow.example.com"], "holds credentials"),
    (["--dvc-remote", "s3://bucket/{{x}}"], "--dvc-remote"),
])
def test_bad_input_is_refused_in_one_line(diamond: Path, args: list[str], says: str) -> None:
    ran = CliRunner().invoke(export_group, ["argo", "--image", IMAGE, "--out", "k8s", *args])
    assert ran.exit_code == 2, ran.output
    assert len(ran.stderr.strip().splitlines()) == 1 and says in ran.stderr, ran.stderr
    assert "hunter2" not in ran.stderr and "Traceback" not in ran.stderr
    assert not (diamond / "k8s").exists()


def test_an_out_dir_that_is_a_file_is_refused(diamond: Path) -> None:
    (diamond / "k8s").write_text("not a directory")
    ran = _export(diamond, "kubeflow")
    assert ran.exit_code == 2 and ran.stderr.strip().endswith("k8s: is a file, not a directory"), ran.stderr


def test_a_sql_task_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _diamond(tmp_path / "sql", extra="  - source: sql/load.sql\n    product: [public, loaded, table]\n"
                                            "    client: db.get_client\n")
    (root / "sql").mkdir()
    (root / "sql/load.sql").write_text("CREATE TABLE {{product}} AS SELECT 1\n")
    monkeypatch.chdir(root)
    ran = _export(root, "argo")
    assert ran.exit_code == 2 and "tasks[load] is a SQL task" in ran.stderr, ran.stderr
    assert len(ran.stderr.strip().splitlines()) == 1


def test_step_names_are_unique_dns_labels() -> None:
    from mlnb.services.export import _step_names

    names = _step_names(["a_b", "a-b", "A.B", "pipeline", "9", "x" * 80, "-_-"])
    assert len(set(names.values())) == len(names)
    assert all(check.DNS_LABEL.match(n) and not n[0].isdigit() and len(n) <= 63 for n in names.values())
    assert names["a_b"] == "a-b" and names["9"] == "task-9" and names["pipeline"] != "pipeline"
    assert dns_label("My Diamond_Project") == "my-diamond-project" and dns_label("__") == ""


def test_the_validators_refuse_what_the_engines_refuse(diamond: Path) -> None:
    """The checks above are not vacuous: a field Argo's or KFP's schema lacks, a value of the wrong type, a
    dependency on a step that is not there, all fail."""
    project = load_project(diamond)
    request = ExportRequest(IMAGE, tracking_uri="http://mlflow:5000", dvc_remote="s3://b")
    from mlnb.services.export import plan

    p = plan(project, request)
    good = export_argo.workflow(p)
    for broken in (_with(good, ["spec", "templates", 1, "container", "envFromSecret"], "x"),  # unknown field
                   _with(good, ["spec", "templates", 1, "container", "command"], "mlnb"),  # not a list
                   _with(good, ["spec", "templates", 0, "dag", "tasks", 1, "dependencies"], ["nowhere"])):
        with pytest.raises((AssertionError, pydantic.ValidationError)):
            check.argo(yaml.safe_dump(broken))
    check.argo(yaml.safe_dump(good))

    spec, platform = export_kubeflow.pipeline_spec(p), export_kubeflow.platform_spec(p)
    assert platform is not None
    ex = next(iter(platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]))
    for docs in ([_with(spec, ["root", "dag", "tasks", "report", "retries"], 2), platform],
                 [_with(spec, ["root", "dag", "tasks", "report", "dependentTasks"], ["nowhere"]), platform],
                 [spec, _with(platform, ["platforms", "kubernetes", "deploymentSpec", "executors", ex,
                                         "secretAsEnv", 0, "keys"], ["A"])]):
        with pytest.raises((AssertionError, json_format.ParseError)):
            check.kubeflow(yaml.safe_dump_all(docs))
    check.kubeflow(yaml.safe_dump_all([spec, platform]))


def _with(doc: Any, path: list[Any], value: Any) -> Any:
    out = json.loads(json.dumps(doc))
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


def test_a_second_export_replaces_the_file_and_leaves_no_temporary_files(diamond: Path) -> None:
    assert _export(diamond, "argo", "--retries", "5").exit_code == 0
    assert _export(diamond, "argo", "--retries", "1").exit_code == 0
    assert sorted(p.name for p in (diamond / "k8s").iterdir()) == ["workflow.yaml"]
    doc = check.argo(check.read(diamond / "k8s/workflow.yaml"))
    assert all(s["template"]["retryStrategy"]["limit"] == 1 for s in check.argo_steps(doc).values())
