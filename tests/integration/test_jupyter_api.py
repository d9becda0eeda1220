"""mlnb's REST API in a real Jupyter server process: auth, XSRF, JSON errors, promotion end to end."""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.registry_fixtures import MODEL_NAME, fake_builds, make_registry_project

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, root: Path, tmp: Path) -> None:
        self.root, self.token, self.port = root, secrets.token_hex(16), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(REPO), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
               "JUPYTER_DATA_DIR": str(tmp / "data"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime")}
        env.pop("MLFLOW_TRACKING_URI", None)
        self.log = (tmp / "server.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root", f"--port={self.port}",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={root}"], cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited: {(tmp / 'server.log').read_text()[-2000:]}")
            try:
                self.call("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        raise RuntimeError("jupyter server did not start in 90 s")

    def call(self, method: str, path: str, body: bytes | dict | None = None, token: bool = True,
             headers: dict[str, str] | None = None, opener=None) -> tuple[int, dict | str]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=dict(headers or {}))
        if token:
            req.add_header("Authorization", f"token {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with (opener or urllib.request.build_opener()).open(req, timeout=60) as res:
                status, text = res.status, res.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("jupyter")
    root = make_registry_project(tmp)
    ids = fake_builds(root, [{"f1": 0.95}, {"f1": 0.97}, {"f1": 0.90, "gate": False}])
    server = Server(root, tmp)
    yield server, ids
    server.stop()


def champion(root: Path) -> str:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    return str(MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(MODEL_NAME, "champion")
               .version)


def test_extension_is_enabled_and_listed():
    res = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    out = re.sub(r"\x1b\[[0-9;]*m", "", res.stdout + res.stderr)
    assert re.search(r"mlnb\.jupyter\s+enabled", out) and re.search(r"mlnb\.jupyter\s+OK", out), out
    res = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True)
    out = re.sub(r"\x1b\[[0-9;]*m", "", res.stdout + res.stderr)
    assert re.search(r"mlnb-jupyterlab v[\d.]+ enabled\s+OK", out), out  # the prebuilt frontend


def test_runs_and_detail_and_promotion_round_trip(served):
    server, (first, second, failed) = served
    status, body = server.call("POST", "/mlnb/api/promote", {"run_id": first, "note": "first"})
    assert status == 200 and body["changed"] and body["version"] == "1", body
    status, body = server.call("GET", "/mlnb/api/runs?limit=10")
    assert status == 200 and body["model_name"] == MODEL_NAME and body["champion"]["run_id"] == first
    rows = {r["run_id"]: r for r in body["runs"]}
    assert [r["run_id"] for r in body["runs"]] == [failed, second, first]  # newest first
    assert rows[first]["champion"] and not rows[second]["champion"] and rows[failed]["gate"] == "failed"
    assert rows[second]["metrics"]["f1"] == pytest.approx(0.97) and rows[second]["model_version"] == "2"

    status, detail = server.call("GET", f"/mlnb/api/runs/{second}")
    assert status == 200 and detail["promotable"] and detail["refusal"] is None
    assert detail["deltas"]["f1"] == pytest.approx(0.02) and detail["champion"]["version"] == "1"
    status, body = server.call("POST", "/mlnb/api/promote", {"run_id": second, "note": "from the UI"})
    assert status == 200 and body["previous_version"] == "1" and champion(server.root) == "2"
    status, body = server.call("POST", "/mlnb/api/promote", {"run_id": second})
    assert status == 200 and not body["changed"] and "already the champion" in body["message"]

    status, detail = server.call("GET", f"/mlnb/api/runs/{failed}")
    assert not detail["promotable"] and "missed by 0.1100" in detail["refusal"]
    status, body = server.call("POST", "/mlnb/api/promote", {"run_id": failed, "note": "try"})
    assert status == 409 and "the gate failed" in body["error"] and champion(server.root) == "2"

    status, body = server.call("POST", "/mlnb/api/rollback", {"note": "back"})
    assert status == 200 and champion(server.root) == "1"
    status, body = server.call("GET", "/mlnb/api/promotions")
    assert [r["action"] for r in body["promotions"]] == ["promote", "promote", "refused", "rollback"]
    assert body["promotions"][1]["note"] == "from the UI"


def test_requirements_and_lineage_for_the_panel(served):
    server, (first, _, failed) = served
    status, detail = server.call("GET", f"/mlnb/api/runs/{failed}")
    assert status == 200 and [(r["name"], r["held"], r["required"]) for r in detail["requirements"]][:3] == [
        ("gate", False, True), ("gate_settings", True, True), ("clean_tree", True, False)]
    status, body = server.call("POST", "/mlnb/api/promote", {"run_id": first, "note": "again"})
    assert status == 200 and body["requirements"][0]["name"] == "gate" and body["bypassed"] == []
    status, chain = server.call("GET", f"/mlnb/api/runs/{first}/lineage")
    assert status == 200 and chain["build"]["run_id"] == first and chain["model"]["version"] == "1"
    assert chain["git"]["commit"] == f"{0:040x}" and chain["build"]["verdict"] == "promotable"
    assert any(p["action"] == "promote" and p["run_id"] == first for p in chain["promotions"])
    status, body = server.call("GET", "/mlnb/api/runs/not-a-run/lineage")
    assert status == 400 and "run id: expected 32 lowercase hex digits" in body["error"]


@pytest.mark.parametrize("method, path, body, status, error", [
    ("GET", "/mlnb/api/runs/not-a-run-id", None, 400, "run id: expected 32 lowercase hex digits"),
    ("GET", "/mlnb/api/runs/0123456789abcdef0123456789abcdef", None, 404, "no such MLflow run"),
    ("GET", "/mlnb/api/runs?limit=lots", None, 400, "query limit: expected an integer"),
    ("POST", "/mlnb/api/promote", b"{not json <script>", 400, "request body: not valid JSON"),
    ("POST", "/mlnb/api/promote", b"[" * 20_000 + b"]" * 20_000, 400, "request body"),
    ("POST", "/mlnb/api/promote", b"x" * (65 * 1024), 413, "larger than 65536 bytes"),
    ("POST", "/mlnb/api/promote", {"run_id": "a" * 32, "sneaky": "<b>"}, 400, "unknown field"),
    ("POST", "/mlnb/api/promote", {"run_id": "a" * 32, "force": "yes"}, 400, "field force: expected bool"),
    ("POST", "/mlnb/api/promote", {"note": "no id"}, 400, "field run_id is required"),
    ("POST", "/mlnb/api/promote", {"run_id": "../../../etc/passwd"}, 400, "run id: expected 32"),
    ("POST", "/mlnb/api/rollback", {"note": "n" * 3000}, 400, "longer than 2000 characters"),
    ("GET", "/mlnb/api/runs/..%2F..%2Fetc%2Fpasswd", None, 400, "run id: expected 32"),
    ("GET", "/mlnb/api/runs/%2e%2e", None, 400, "run id: expected 32"),
    ("GET", "/mlnb/api/runs/" + "a" * 31 + "%00", None, 400, "run id: expected 32"),
    ("POST", "/mlnb/api/debug", {"task": "<script>alert(1)</script>"}, 400, "field task: not a task name"),
], ids=["bad-id", "unknown-id", "bad-limit", "malformed", "deeply-nested", "too-large", "unknown-field",
        "wrong-type", "missing-id", "path-id", "long-note", "encoded-traversal", "encoded-dots", "nul", "debug-task"])
def test_bad_requests_get_json_errors_that_echo_nothing(served, method, path, body, status, error):
    server, _ = served
    got, reply = server.call(method, path, body)
    assert got == status and isinstance(reply, dict) and error in reply["error"], reply
    assert set(reply) == {"error"} and "Traceback" not in reply["error"]
    for echoed in ("<script>", "sneaky", "<b>", "passwd", "not-a-run-id", "lots"):
        assert echoed not in reply["error"]
    assert server.call("GET", "/api/status")[0] == 200  # still up


def test_unauthenticated_and_cross_site_requests_are_refused(served):
    server, (first, _, _) = served
    for method, path, body in (("GET", "/mlnb/api/runs", None), ("POST", "/mlnb/api/promote", {"run_id": first})):
        status, reply = server.call(method, path, body, token=False)
        assert status == 403 and set(reply) == {"error"}
    # a browser session (cookie) without the XSRF token cannot POST; with it, it can
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    assert server.call("GET", f"/login?token={server.token}", token=False, opener=opener)[0] == 200
    assert server.call("GET", "/mlnb/api/runs", token=False, opener=opener)[0] == 200
    status, _ = server.call("POST", "/mlnb/api/rollback", {"note": "csrf"}, token=False, opener=opener)
    assert status == 403
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    status, reply = server.call("POST", "/mlnb/api/rollback", {"note": "with xsrf"}, token=False, opener=opener,
                                headers={"X-XSRFToken": xsrf})
    assert status == 200, reply


def test_concurrent_promotions_through_the_server_are_serialised(tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    root = make_registry_project(tmp_path)
    ids = fake_builds(root, [{"f1": 0.90 + i / 100} for i in range(6)])
    server = Server(root, tmp_path)
    try:
        with ThreadPoolExecutor(len(ids)) as pool:
            replies = list(pool.map(lambda r: server.call("POST", "/mlnb/api/promote", {"run_id": r, "note": r[:6]}),
                                    ids))
    finally:
        server.stop()
    assert [status for status, _ in replies] == [200] * len(ids), replies
    records = [json.loads(line) for line in (root / "promotions.jsonl").read_text().splitlines()]
    assert sorted(r["run_id"] for r in records) == sorted(ids) and records[0]["previous_version"] is None
    assert all(b["previous_version"] == a["version"] for a, b in itertools.pairwise(records))
    assert champion(root) == records[-1]["version"]
