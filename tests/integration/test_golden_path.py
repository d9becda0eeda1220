"""The example project end to end: real kernels, real MLflow (sqlite), real git.

One build of the example project is shared by the module (it takes about a minute and a
half); tests that change things work on a copy of the built project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from mlnb.core.integrity import HASH_TAG, model_sha256
from tests.conftest import copy_project, run_mlnb
from tests.serving_fixtures import free_port, start_mlnb_serve, stop, wait_ready

pytestmark = pytest.mark.integration
TASKS = ["ingest", "validate", "features", "train", "evaluate", "export"]
MODEL = "breast-cancer-classifier"


def client_for(root: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def build_runs(root: Path) -> list:
    client = client_for(root)
    exp = client.get_experiment_by_name("mlnb-example")
    return client.search_runs([exp.experiment_id], "tags.`mlnb.kind` = 'build'", order_by=["attributes.start_time ASC"])


def statuses(stdout: str) -> dict[str, str]:
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] in TASKS:
            out[parts[0]] = parts[1] if parts[1] != "up" else "up to date"
    return out


def without_nbval_requirement(root: Path) -> None:
    """Commit a promotion policy without the nbval requirement: these tests do not spend a minute on
    `make nbval` (tests/integration/test_promotion.py covers that requirement with a real nbval run)."""
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("  nbval: true ", "  nbval: false")
                      .replace("  dvc: false ", "  dvc: true "))  # the policy as a project's, DVC included
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", "policy"],
                   cwd=root, check=True, capture_output=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_project(tmp_path_factory.mktemp("golden") / "project")
    without_nbval_requirement(root)
    proc = run_mlnb(root, "build")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (root / "build.stdout").write_text(proc.stdout)
    return root


@pytest.fixture
def built_copy(built: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(built, dest, symlinks=True)
    return dest


def test_products_of_a_full_build(built: Path) -> None:
    stdout = (built / "build.stdout").read_text()
    assert statuses(stdout) == dict.fromkeys(TASKS, "executed")
    assert "gate: promotable: no champion yet; healthy: f1 0.9889 reaches gate.threshold 0.9000" in stdout
    assert "serving artifact: products/export/model/" in stdout
    assert (built / "products/export/model/MLmodel").is_file()
    metrics = json.loads((built / "products/evaluate/metrics.json").read_text())
    assert set(metrics) == {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert all(0.9 < v <= 1 for v in metrics.values()), metrics
    gate = json.loads((built / "products/evaluate/gate.json").read_text())
    assert (gate["verdict"], gate["metric"], gate["candidate"], gate["champion"]) == ("promotable", "f1",
                                                                                   metrics["f1"], None)
    assert gate["significance"]["reference"] == "majority_class" and gate["baseline"]["value"] < 0.8
    assert gate["significance"]["mcnemar"]["p_value"] < 0.05  # beats the majority-class baseline
    for png in ("confusion_matrix.png", "roc.png"):
        assert (built / "products/evaluate" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((built / "products/validate/report.json").read_text())["status"] == "passed"
    for task in TASKS:
        nb = json.loads((built / f"products/{task}/{task}.ipynb").read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert not errors, task
    assert not (built / "products/_failed").exists()


def test_mlflow_records_the_build(built: Path) -> None:
    client = client_for(built)
    (run,) = build_runs(built)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=built, capture_output=True, text=True).stdout.strip()
    assert run.data.tags["mlnb.git_commit"].startswith(head)
    assert run.data.params["train.C"] == "1.0" and run.info.status == "FINISHED"
    metrics = json.loads((built / "products/evaluate/metrics.json").read_text())
    assert run.data.metrics["f1"] == pytest.approx(metrics["f1"])
    assert run.data.tags["mlnb.gate_passed"] == "true" and run.data.tags["mlnb.gate.verdict"] == "promotable"
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    assert sorted(c.data.tags["mlnb.task"] for c in children) == sorted(TASKS)
    for child in children:
        assert child.data.tags["mlnb.status"] == "executed"
        assert child.data.metrics["duration_s"] > 0
        names = [a.path for a in client.list_artifacts(child.info.run_id, "notebooks")]
        assert names == [f"notebooks/{child.data.tags['mlnb.task']}.ipynb"]
    train = next(c for c in children if c.data.tags["mlnb.task"] == "train")
    assert train.data.params["model"] == "logistic_regression" and "cv_f1_mean" in train.data.metrics
    (version,) = client.search_model_versions(f"name = '{MODEL}'")
    assert version.aliases == []  # export registers, never promotes
    assert version.tags["mlnb.artifact_sha256"] == model_sha256(built / "products/export/model")
    assert version.tags["mlnb.build_run_id"] == run.info.run_id
    for task in TASKS:  # what JupyterLab's "Promote this run" button reads
        meta = json.loads((built / f"products/{task}/{task}.ipynb").read_text())["metadata"]["mlnb"]
        assert (meta["build_run_id"], meta["task"]) == (run.info.run_id, task)
        # ...and what `mlnb status --explain` compares: the upstream products' content hashes
        assert ("upstream" in meta) == (task != "ingest")
        assert all(len(h) == 64 for hashes in meta.get("upstream", {}).values() for h in hashes.values())


def test_serving_artifact_predicts(built: Path) -> None:
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(built / "products/export/model"))
    inputs = model.metadata.get_input_schema().input_names()
    assert len(inputs) == 30 and "mean_radius" in inputs
    example = json.loads((built / "products/export/model/input_example.json").read_text())
    frame = pd.DataFrame(example["data"], columns=example["columns"])
    assert set(model.predict(frame)) <= {0, 1}


def test_second_build_runs_nothing_and_ploomber_agrees(built: Path) -> None:
    before = len(build_runs(built))
    proc = run_mlnb(built, "build")
    assert proc.returncode == 0, proc.stderr
    assert "Nothing to do: all 6 tasks are up to date" in proc.stdout
    assert len(build_runs(built)) == before
    status = run_mlnb(built, "status")
    assert statuses(status.stdout) == dict.fromkeys(TASKS, "up to date"), status.stdout
    ploomber = subprocess.run([str(Path(sys.executable).parent / "ploomber"), "build"], cwd=built,
                              capture_output=True, text=True, timeout=300)
    assert ploomber.returncode == 0, ploomber.stderr
    ran = [ln.split()[1] for ln in ploomber.stdout.splitlines() if ln.split()[:1] and ln.split()[0] in TASKS]
    assert ran == ["False"] * 6, ploomber.stdout


def test_editing_a_notebook_reruns_it_and_its_downstream_only(built_copy: Path) -> None:
    path = built_copy / "notebooks/evaluate.ipynb"
    nb = json.loads(path.read_text())
    nb["cells"].append({"cell_type": "code", "id": "added", "metadata": {}, "outputs": [], "execution_count": None,
                        "source": "print('an extra look at the metrics', metrics['f1'])"})
    path.write_text(json.dumps(nb, indent=1))
    status = run_mlnb(built_copy, "status")
    assert "source changed: notebooks/evaluate.ipynb" in status.stdout
    assert "upstream evaluate is outdated" in status.stdout
    assert statuses(status.stdout) == {**dict.fromkeys(TASKS[:4], "up to date"), "evaluate": "outdated",
                                       "export": "outdated"}
    proc = run_mlnb(built_copy, "build")
    assert proc.returncode == 0, proc.stderr
    assert statuses(proc.stdout) == {**dict.fromkeys(TASKS[:4], "skipped"), "evaluate": "executed",
                                     "export": "executed"}
    out = json.loads((built_copy / "products/evaluate/evaluate.ipynb").read_text())
    assert "an extra look at the metrics" in json.dumps(out["cells"][-1]["outputs"])


def test_second_build_after_a_promotion_is_healthy_but_not_promotable(built_copy: Path) -> None:
    """The champion has F1 0.9889: the same model again must not turn every later build red."""
    client = client_for(built_copy)
    (first,) = build_runs(built_copy)
    assert run_mlnb(built_copy, "promote", first.info.run_id).returncode == 0
    proc = run_mlnb(built_copy, "build", "--force")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("gate: not promotable: f1 0.9889 vs champion v1 0.9889: error 0.0111 -> 0.0111, cut 0% < "
            "gate.min_relative_change 20% (needs f1 0.9912); healthy: f1 0.9889 reaches gate.threshold 0.9000"
            in proc.stdout), proc.stdout
    assert "FAILED" not in proc.stdout + proc.stderr and "mlnb debug" not in proc.stdout + proc.stderr
    second = build_runs(built_copy)[-1]
    assert second.data.tags["mlnb.gate.verdict"] == "not_promotable" and second.data.tags["mlnb.gate_passed"] == "true"
    assert run_mlnb(built_copy, "verdict").stdout.strip() == "not_promotable"
    versions = client.search_model_versions(f"name = '{MODEL}'")
    assert len(versions) == 2  # healthy: exported and registered, no alias
    refused = run_mlnb(built_copy, "promote", second.info.run_id)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "not promotable" in refused.stderr and "cut 0%" in refused.stderr
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"


def test_a_gate_override_is_recorded_and_not_promotable(built_copy: Path) -> None:
    """`-p gate.min_delta=-1` used to switch the gate off, and its build was promoted as unforced."""
    proc = run_mlnb(built_copy, "build", "--force", "-p", "gate.min_delta=-1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ("gate: not promotable: gate settings differ from the committed params.yaml (gate.min_delta: 0.02 -> "
            "-1.0); with them: no champion yet" in proc.stdout), proc.stdout
    run = build_runs(built_copy)[-1]
    assert run.data.tags["mlnb.gate.config_changes"] == "gate.min_delta: 0.02 -> -1.0"
    assert run.data.tags["mlnb.gate.verdict"] == "not_promotable"
    refused = run_mlnb(built_copy, "promote", run.info.run_id)
    assert refused.returncode == 1 and "gate settings differ" in refused.stderr, refused.stderr
    assert "[FAIL] gate_settings: NOT held: differ from the committed params.yaml: gate.min_delta" in refused.stdout
    forced = run_mlnb(built_copy, "promote", run.info.run_id, "--force")
    assert forced.returncode == 0, forced.stderr
    record = json.loads((built_copy / "promotions.jsonl").read_text().splitlines()[-1])
    assert record["forced"] is True and record["action"] == "promote"
    # exactly what was bypassed: the verdict, the settings, and dvc.lock (overridden builds are not recorded)
    assert record["bypassed"] == ["gate", "gate_settings", "dvc"]


def test_a_real_improvement_on_a_weaker_champion_is_promotable(built_copy: Path) -> None:
    client = client_for(built_copy)
    weak = run_mlnb(built_copy, "build", "--force", "-p", "train.C=0.003")
    assert weak.returncode == 0, weak.stdout + weak.stderr
    weak_run = build_runs(built_copy)[-1]
    assert run_mlnb(built_copy, "promote", weak_run.info.run_id, "--force", "--note", "weak").returncode == 0
    proc = run_mlnb(built_copy, "build")  # train's committed C again: it re-trains
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("gate: "))
    assert line.startswith("gate: promotable: f1 0.9889 vs champion v2 0.9") and ">= gate.min_relative_change 20%" \
        in line, line
    better = build_runs(built_copy)[-1]
    promoted = run_mlnb(built_copy, "promote", better.info.run_id)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert "NOT held" not in promoted.stdout and "[ok  ] clean_tree: held" in promoted.stdout
    assert "[ok  ] dvc: held" in promoted.stdout and "nbval: not held (not required)" in promoted.stdout
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "3"
    record = json.loads((built_copy / "promotions.jsonl").read_text().splitlines()[-1])
    assert (record["forced"], record["bypassed"], record["version"]) == (False, [], "3")


def test_failed_gate_against_champion_keeps_outputs_and_registers_nothing(built_copy: Path) -> None:
    client = client_for(built_copy)
    (first,) = build_runs(built_copy)
    promoted = run_mlnb(built_copy, "promote", first.info.run_id, "--note", "first champion")
    assert promoted.returncode == 0 and "version 1 is now the champion" in promoted.stdout, promoted.stderr
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    proc = run_mlnb(built_copy, "build", "-p", "gate.threshold=0.995")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "gate: failed: f1 0.9889 is below gate.threshold 0.9950" in proc.stderr
    # a verdict, not a crash: no failing cell, no debug advice, no traceback
    for crash in ("FAILED task evaluate", "GateFailed", "mlnb debug", "Traceback"):
        assert crash not in proc.stderr, proc.stderr
    assert "evaluate outputs kept in products/_failed/evaluate/" in proc.stderr
    kept = built_copy / "products/_failed/evaluate"
    assert sorted(p.name for p in kept.iterdir()) == ["confusion_matrix.png", "evaluate.ipynb", "gate.json",
                                                     "metrics.json", "roc.png", "roc_curve.csv"]
    gate = json.loads((kept / "gate.json").read_text())
    assert gate["verdict"] == "failed" and gate["champion"]["version"] == "1"
    assert gate["significance"]["reference"] == "champion"
    assert gate["significance"]["mcnemar"]["candidate_only_correct"] == 0  # same model, same rows
    assert not (built_copy / "products/evaluate/gate.json").exists()
    assert statuses(proc.stdout)["export"] == "not"  # "not run"
    assert len(client.search_model_versions(f"name = '{MODEL}'")) == 1
    last = build_runs(built_copy)[-1]
    assert last.info.status == "FAILED" and last.data.tags["mlnb.gate_passed"] == "false"
    assert last.data.tags["mlnb.gate.verdict"] == "failed" and "mlnb.failure" not in last.data.tags
    runs = run_mlnb(built_copy, "runs")
    assert last.info.run_id in runs.stdout and "failed" in runs.stdout
    status = run_mlnb(built_copy, "status")
    assert statuses(status.stdout)["evaluate"] == "outdated"

    refused = run_mlnb(built_copy, "promote", last.info.run_id)  # the gate said no: so does promote
    assert refused.returncode == 1 and "is below gate.threshold 0.9950" in refused.stderr, refused.stderr
    forced = run_mlnb(built_copy, "promote", last.info.run_id, "--force", "--note", "ship it anyway")
    assert forced.returncode == 0, forced.stderr
    champion = client.get_model_version_by_alias(MODEL, "champion")  # its trained model, registered now
    assert str(champion.version) == "2" and champion.tags["mlnb.build_run_id"] == last.info.run_id
    assert str(client.get_model_version_by_alias(MODEL, "previous").version) == "1"
    load = subprocess.run([sys.executable, "-c", "import mlflow.pyfunc; m = mlflow.pyfunc.load_model("
                           f"'models:/{MODEL}@champion'); print(len(m.metadata.get_input_schema().input_names()))"],
                          env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{built_copy / 'mlflow.db'}"},
                          cwd=built_copy, capture_output=True, text=True, timeout=300)
    assert load.stdout.strip() == "30", load.stderr[-2000:]  # a real, loadable model with the 30 features
    assert champion.tags[HASH_TAG]  # recorded when --force registered it, so `mlnb serve` can check the files

    port = free_port()  # `mlnb serve` (no argument: this project's champion) answers with that version
    proc = start_mlnb_serve(None, port, built_copy, "--poll-interval", "0")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        example = (built_copy / "products/export/model/serving_input_example.json").read_bytes()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=example,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert len(json.loads(resp.read())["predictions"]) == 5
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=30) as resp:
            info = json.loads(resp.read())
        assert (info["model_version"], info["build_run_id"], info["verified"]) == ("2", last.info.run_id, True)
        assert info["git_commit"] == last.data.tags["mlnb.git_commit"]
    finally:
        assert stop(proc) == 0


def test_report_and_runs(built_copy: Path) -> None:
    proc = run_mlnb(built_copy, "report")
    assert proc.returncode == 0, proc.stderr
    page = (built_copy / "reports/report.html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "Gate <span class=\"ok\">PROMOTABLE</span>" in page
    for task in TASKS:
        assert f"<summary>{task} (executed)</summary>" in page
    runs = run_mlnb(built_copy, "runs")
    (run,) = build_runs(built_copy)
    assert run.info.run_id in runs.stdout and "promotable" in runs.stdout


def test_lineage_of_the_champion_matches_each_store_and_verify_names_a_tampered_product(built_copy: Path) -> None:
    import yaml

    (run,) = build_runs(built_copy)
    assert run_mlnb(built_copy, "promote", run.info.run_id, "--note", "first").returncode == 0
    proc = run_mlnb(built_copy, "lineage", f"models:/{MODEL}@champion", "--json")
    assert proc.returncode == 0, proc.stderr
    chain = json.loads(proc.stdout)
    version = client_for(built_copy).get_model_version(MODEL, "1")
    assert chain["model"]["version"] == "1" and chain["model"]["aliases"] == ["champion"]
    assert chain["model"]["artifact_sha256"] == version.tags[HASH_TAG] == model_sha256(built_copy / "products/export/model")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=built_copy, capture_output=True, text=True).stdout.strip()
    assert chain["build"]["run_id"] == run.info.run_id and chain["build"]["verdict"] == "promotable"
    assert chain["git"]["commit"].startswith(head) and chain["git"]["clean"] == "true"
    assert chain["params"]["train.C"] == "1.0" and chain["params"]["gate.metric"] == "f1"
    lock = yaml.safe_load((built_copy / "dvc.lock").read_text())["stages"]
    assert chain["dvc"]["stages"]["train"]["outs"] == {o["path"]: o["md5"] for o in lock["train"]["outs"]}
    assert chain["dvc"]["stages"]["ingest"]["deps"]["data/raw/breast_cancer.csv"] == next(
        d["md5"] for d in lock["ingest"]["deps"] if d["path"] == "data/raw/breast_cancer.csv")
    assert [n["task"] for n in chain["notebooks"]] == sorted(TASKS)
    assert [(p["action"], p["note"]) for p in chain["promotions"]] == [("promote", "first")]
    assert json.loads(run_mlnb(built_copy, "lineage", run.info.run_id, "--json").stdout)["model"]["version"] == "1"

    ok = run_mlnb(built_copy, "lineage", f"models:/{MODEL}/1", "--verify")
    assert ok.returncode == 0 and "BROKEN" not in ok.stdout, ok.stdout
    assert "[ok    ] model files: version 1 hashes to the recorded sha256" in ok.stdout
    assert "MLflow notebooks/train.ipynb (task train): is the notebook dvc.lock recorded" in ok.stdout
    metrics = built_copy / "products/evaluate/metrics.json"
    metrics.write_text(metrics.read_text().replace("0.98", "0.99", 1))
    bad = run_mlnb(built_copy, "lineage", f"models:/{MODEL}@champion", "--verify")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    broken = [ln for ln in bad.stdout.splitlines() if "BROKEN" in ln]
    assert len(broken) == 1 and "products/evaluate/metrics.json: md5 " in broken[0] and "changed since the build" \
        in broken[0], bad.stdout
    wrong = run_mlnb(built_copy, "lineage", "models:/nope@champion")
    assert wrong.returncode == 2 and "no version of nope has the alias 'champion'" in wrong.stderr, wrong.stderr


def test_monitor_compares_served_traffic_with_the_train_split_the_champion_was_built_from(built_copy: Path) -> None:
    """The user's path: build, promote, `mlnb serve --prediction-log`, `mlnb monitor` with no --reference: the
    reference is the train split whose hash the champion's build recorded in dvc.lock; when a later change
    replaces the workspace copy, the build's own copy comes from the DVC cache."""
    import http.client

    import pandas as pd

    (run,) = build_runs(built_copy)
    assert run_mlnb(built_copy, "promote", run.info.run_id).returncode == 0
    port = free_port()
    proc = start_mlnb_serve(None, port, built_copy, "--prediction-log", "predictions.jsonl", "--poll-interval", "0",
                            log=built_copy / "serve.log")
    raw = pd.read_csv(built_copy / "data/raw/breast_cancer.csv").drop(columns=["diagnosis"])
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        sample = raw.sample(600, replace=True, random_state=7)
        for start in range(0, 600, 60):
            part = sample.iloc[start:start + 60]
            conn.request("POST", "/invocations", json.dumps({"dataframe_split": {
                "columns": list(part.columns), "data": part.to_numpy().tolist()}}), {"Content-Type": "application/json"})
            assert conn.getresponse().read() and True
    finally:
        assert stop(proc) == 0
    res = run_mlnb(built_copy, "monitor", "--json", "--no-mlflow")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    data = json.loads(res.stdout)
    assert data["window"]["model_name"] == MODEL and data["window"]["model_version"] == "1"
    assert data["reference"]["source"] == "workspace (matches the build's dvc.lock)"
    assert data["reference"]["path"] == "products/features/train.parquet" and data["reference"]["verified"] is True
    assert data["drift"] is False and len(data["features"]) == 30 and data["quality"]["ok"] is True
    assert run_mlnb(built_copy, "report").returncode == 0  # the latest monitoring result is in the report
    page = (built_copy / "reports/report.html").read_text()
    assert "Monitoring <span class=\"ok\">NO DRIFT</span>" in page and "0 of 30 features drifted" in page

    train = pd.read_parquet(built_copy / "products/features/train.parquet")  # a later rebuild on other data
    train.assign(mean_radius=train["mean_radius"] * 3).to_parquet(built_copy / "products/features/train.parquet")
    again = json.loads(run_mlnb(built_copy, "monitor", "--json", "--no-mlflow").stdout)
    assert again["reference"]["source"].startswith("DVC cache") and again["drift"] is False
