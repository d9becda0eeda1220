"""The Runs panel's API in a real Jupyter server over a real MLflow store, and `mlnb runs`: what
tells builds apart (every metric, params differing from the champion, the gate verdict apart from a
crash, forced promotions), plots streamed from MLflow's artifact store, compare, the change token."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest

from tests.conftest import run_mlnb
from tests.integration.test_jupyter_api import Server
from tests.registry_fixtures import fake_builds, make_registry_project

pytestmark = pytest.mark.integration

# oldest first: the champion (with plots and an extra metric); a retrain with C=0.5 (plots); a healthy
# build the gate turned down (new verdict tag); a build whose gate failed the older way (gate_passed=false)
BUILDS = [{"f1": 0.90, "plots": True, "metrics": {"brier": 0.1}},
          {"f1": 0.95, "plots": True, "params": {"train.C": "0.5"}},
          {"f1": 0.85, "verdict": "not_promotable", "gate_reason": "candidate F1 0.8500 < champion F1 0.9000"},
          {"f1": 0.80, "gate": False}]


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes


class RunsServer(Server):
    def raw(self, method: str, path: str) -> Raw:
        """The undecoded answer (for artifacts)."""
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                return Raw(res.status, dict(res.headers), res.read())
        except urllib.error.HTTPError as err:
            return Raw(err.code, dict(err.headers), err.read())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("runs-api")
    root = make_registry_project(tmp)
    ids = fake_builds(root, BUILDS)
    first = run_mlnb(root, "promote", ids[0], "--note", "first champion")
    assert first.returncode == 0, first.stderr
    server = RunsServer(root, tmp)
    yield server, ids
    server.stop()


def runs_by_id(server: Server) -> tuple[dict, dict[str, dict]]:
    status, body = server.call("GET", "/mlnb/api/runs?limit=10")
    assert status == 200, body
    return body, {r["run_id"]: r for r in body["runs"]}


def test_the_list_tells_builds_apart(served):
    server, (champion, retrain, turned_down, gate_failed) = served
    body, rows = runs_by_id(server)
    assert body["metric_keys"] == ["brier", "f1", "roc_auc"]  # whatever the builds logged
    assert rows[retrain]["params_diff"] == [{"key": "train.C", "value": "0.5", "champion": "1.0"}]
    assert rows[champion]["params_diff"] == [] and rows[turned_down]["params_diff"] == []
    verdicts = {k: (rows[k]["verdict"], rows[k]["status"]) for k in rows}
    assert verdicts == {champion: ("promotable", "ok"), retrain: ("promotable", "ok"),
                        turned_down: ("not_promotable", "ok"), gate_failed: ("failed", "failed")}
    assert [rows[k]["model_version"] for k in (champion, retrain, turned_down, gate_failed)] == ["1", "2", None, None]
    assert rows[champion]["champion"] and body["champion"] == {"version": "1", "run_id": champion}
    assert rows[champion]["promotion"]["forced"] is False and rows[retrain]["promotion"] is None
    assert all(r["mlflow_url"] is None for r in rows.values())  # the embedded SQLite store has no UI
    assert isinstance(body["token"], str) and body["token"]
    for limit in ("0", "501"):
        status, reply = server.call("GET", f"/mlnb/api/runs?limit={limit}")
        assert status == 400 and "query limit: expected 1 to 500" in reply["error"]


def test_detail_lists_the_evaluate_plots_and_streams_them(served):
    server, (_, retrain, turned_down, _) = served
    status, detail = server.call("GET", f"/mlnb/api/runs/{retrain}")
    assert status == 200, detail
    run = detail["run"]
    assert [(p["task"], p["name"]) for p in run["plots"]] == [("evaluate", "confusion_matrix.png"),
                                                              ("evaluate", "roc.png")]
    assert run["params"]["train.C"] == "0.5" and detail["champion"]["params"]["train.C"] == "1.0"
    assert detail["deltas"]["f1"] == pytest.approx(0.05)
    roc = next(p for p in run["plots"] if p["name"] == "roc.png")
    res = server.raw("GET", f"/mlnb/api/runs/{roc['run_id']}/artifacts/roc.png")
    assert res.status == 200 and res.headers["Content-Type"] == "image/png"
    assert res.headers["X-Content-Type-Options"] == "nosniff"
    assert res.body == (server.root / ".fake-plots" / "1" / "roc.png").read_bytes()  # what MLflow stored
    assert res.body.startswith(b"\x89PNG")
    status, detail = server.call("GET", f"/mlnb/api/runs/{turned_down}")
    assert detail["run"]["plots"] == [] and detail["run"]["verdict"] == "not_promotable"


@pytest.mark.parametrize("path, status, error", [
    ("..%2F..%2Fmlflow.db", 400, "plain names"),
    ("%2e%2e/%2e%2e/etc/passwd.png", 400, "plain names"),
    ("%2Fetc%2Fhostname.png", 400, "plain names"),
    ("roc.png%00.txt", 400, "plain names"),
    ("notebooks/evaluate.ipynb", 400, "only images"),
    ("gate.svg", 400, "only images"),
    ("missing.png", 404, "no such image artifact"),
], ids=["encoded-traversal", "dots", "absolute", "nul", "notebook", "svg", "missing"])
def test_artifact_requests_are_checked(served, path, status, error):
    server, (_, retrain, _, _) = served
    got, reply = server.call("GET", f"/mlnb/api/runs/{retrain}/artifacts/{path}")
    assert got == status and isinstance(reply, dict) and error in reply["error"], reply
    assert set(reply) == {"error"} and "passwd" not in reply["error"] and "hostname" not in reply["error"]


def test_artifacts_need_a_valid_run_of_this_project_and_authentication(served):
    server, (_, retrain, _, _) = served
    status, reply = server.call("GET", "/mlnb/api/runs/not-a-run/artifacts/roc.png")
    assert status == 400 and "32 lowercase hex" in reply["error"]
    status, reply = server.call("GET", f"/mlnb/api/runs/{'0' * 32}/artifacts/roc.png")
    assert status == 404 and "no such MLflow run" in reply["error"]
    status, reply = server.call("GET", f"/mlnb/api/runs/{retrain}/artifacts/roc.png", token=False)
    assert status == 403 and set(reply) == {"error"}
    for path in ("/mlnb/api/runs/changes", f"/mlnb/api/compare?a={retrain}&b={retrain}"):
        assert server.call("GET", path, token=False)[0] == 403


def test_compare_puts_two_builds_side_by_side(served):
    server, (champion, retrain, _, _) = served
    status, body = server.call("GET", f"/mlnb/api/compare?a={champion}&b={retrain}")
    assert status == 200, body
    assert [p["key"] for p in body["params"] if p["differs"]] == ["train.C"]
    c = next(p for p in body["params"] if p["key"] == "train.C")
    assert (c["a"], c["b"]) == ("1.0", "0.5")
    metrics = {m["key"]: m for m in body["metrics"]}
    assert metrics["f1"]["delta"] == pytest.approx(0.05) and metrics["f1"]["differs"]
    assert metrics["brier"]["b"] is None and metrics["brier"]["delta"] is None  # only the champion logged it
    assert [(p["name"], p["a"]["run_id"] != p["b"]["run_id"]) for p in body["plots"]] == [
        ("confusion_matrix.png", True), ("roc.png", True)]
    for query, error in ((f"a={champion}", "run id"), (f"a={champion}&b=..%2Fx", "run id")):
        status, reply = server.call("GET", f"/mlnb/api/compare?{query}")
        assert status == 400 and error in reply["error"]


def test_the_change_token_moves_with_promotions_and_builds_only(served):
    server, (_, _, turned_down, _) = served
    before = server.call("GET", "/mlnb/api/runs/changes")[1]["token"]
    server.call("GET", "/mlnb/api/runs?limit=10")  # reading changes nothing
    server.call("GET", f"/mlnb/api/runs/{turned_down}")
    assert server.call("GET", "/mlnb/api/runs/changes")[1]["token"] == before

    forced = run_mlnb(server.root, "promote", turned_down, "--force", "--note", "hotfix")  # from outside
    assert forced.returncode == 0, forced.stderr
    after = server.call("GET", "/mlnb/api/runs/changes")[1]["token"]
    assert after != before
    body, rows = runs_by_id(server)
    assert body["token"] == after
    assert rows[turned_down]["champion"] and rows[turned_down]["promotion"]["forced"] is True
    assert rows[turned_down]["promotion"]["note"] == "hotfix"
    _, detail = server.call("GET", f"/mlnb/api/runs/{turned_down}")
    assert [(p["action"], p["forced"]) for p in detail["run"]["promotions"]] == [("promote", True)]

    fake_builds(server.root, [{"f1": 0.91}])  # a build ends
    assert server.call("GET", "/mlnb/api/runs/changes")[1]["token"] != after


def test_mlnb_runs_prints_every_metric_the_verdict_and_what_differs(served):
    server, (champion, retrain, turned_down, gate_failed) = served
    proc = run_mlnb(server.root, "runs")
    assert proc.returncode == 0, proc.stderr
    header, _, *lines = proc.stdout.splitlines()
    assert header.split()[5:10] == ["brier", "f1", "roc_auc", "verdict", "version"]
    row = {line.split()[0]: line for line in lines}
    assert "not promotable" in row[turned_down] and "(champion, forced)" in row[turned_down]
    assert row[gate_failed].split()[3] == "failed" and "0.8000" in row[gate_failed]
    assert "train.C=0.5 (champion 1.0)" in row[retrain] and "promotable" in row[retrain]
    assert "0.1000" in row[champion]  # brier, logged by this build only
    proc = run_mlnb(server.root, "promotions")
    assert "promote (forced)" in proc.stdout
