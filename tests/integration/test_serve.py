"""`mlnb serve` as a real process on 127.0.0.1: MLflow parity, endpoints, bad input, load, fuzzing,
prediction log, integrity refusals, workers and shutdown."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.serving_fixtures import (
    REPO,
    breast_cancer,
    free_port,
    save_local_model,
    start_mlflow_serve,
    start_mlnb_serve,
    stop,
    wait_ready,
)

pytestmark = pytest.mark.integration
MARKER = "SECRET-VALUE-7f3a"


@dataclass
class Server:
    url: str
    port: int
    proc: subprocess.Popen
    log: Path
    predictions: Path


def request(port: int, method: str, path: str, body: bytes | None = None, content_type: str = "application/json",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body, {"Content-Type": content_type, **(headers or {})} if body is not None
                     else headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def split(frame) -> bytes:
    return json.dumps({"dataframe_split": {"columns": list(frame.columns), "data": frame.to_numpy().tolist()}}).encode()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_local_model(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory) -> Server:
    work = tmp_path_factory.mktemp("serve-run")
    port = free_port()
    log, predictions = work / "serve.log", work / "predictions.jsonl"
    proc = start_mlnb_serve(str(model_dir), port, work, "--poll-interval", "0", "--prediction-log", str(predictions),
                            "--log-max-rows", "5", log=log)
    wait_ready(f"http://127.0.0.1:{port}", proc)
    yield Server(f"http://127.0.0.1:{port}", port, proc, log, predictions)
    assert stop(proc) == 0, log.read_text()[-2000:]


def test_same_predictions_as_mlflow_models_serve_in_every_format(model_dir: Path, server: Server, tmp_path) -> None:
    import mlflow.pyfunc
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    X, _ = breast_cancer()
    rows = X.sample(60, random_state=3)
    bodies = {
        "dataframe_split": (split(rows), "application/json"),
        "dataframe_records": (json.dumps({"dataframe_records": rows.to_dict(orient="records")}).encode(),
                              "application/json"),
        "instances": (json.dumps({"instances": rows.to_dict(orient="records")}).encode(), "application/json"),
        "inputs": (json.dumps({"inputs": rows.to_dict(orient="list")}).encode(), "application/json"),
        "csv": (rows.to_csv(index=False).encode(), "text/csv"),
    }
    port = free_port()
    baseline = start_mlflow_serve(model_dir / "model", port, tmp_path)
    try:
        wait_ready(f"http://127.0.0.1:{port}", baseline, path="/ping")
        for name, (body, ctype) in bodies.items():
            theirs = request(port, "POST", "/invocations", body, ctype)
            ours = request(server.port, "POST", "/invocations", body, ctype)
            assert theirs[0] == ours[0] == 200, (name, theirs[2][:300], ours[2][:300])
            assert json.loads(ours[2]) == json.loads(theirs[2]), name
    finally:
        stop(baseline)
    expected = mlflow.pyfunc.load_model(str(model_dir / "model")).predict(rows).tolist()
    assert json.loads(request(server.port, "POST", "/invocations", *bodies["dataframe_split"])[2]) == \
        {"predictions": expected}
    assert len(set(expected)) == 2  # both classes: the comparison can tell a wrong model apart
    # MLflow's own scoring client, unchanged, against mlnb serve
    client = ScoringServerClient("127.0.0.1", server.port)
    client.wait_server_ready(timeout=10)
    assert client.invoke(rows).get_predictions().iloc[:, 0].tolist() == expected


def test_health_ready_version_metrics_openapi(model_dir: Path, server: Server) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    for path in ("/health", "/ping"):
        assert request(server.port, "GET", path)[0] == 200
    status, _, body = request(server.port, "GET", "/ready")
    assert status == 200 and json.loads(body)["status"] == "ready"
    info = json.loads(request(server.port, "GET", "/version")[2])
    recorded = json.loads((model_dir / "info.json").read_text())
    assert info["artifact_sha256"] == recorded["artifact_sha256"] and info["verified"] is True
    assert info["model_name"] == "local-demo" and len(info["run_id"]) in (0, 32) and info["mlflow"]
    X, _ = breast_cancer()
    for _ in range(3):
        request(server.port, "POST", "/invocations", split(X.head(4)))
    request(server.port, "POST", "/invocations", b"{", "application/json")
    status, headers, text = request(server.port, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text.decode())}
    counts = {s.labels["status"]: s.value for s in families["mlnb_serve_requests"].samples
              if s.labels["endpoint"] == "/invocations"}
    assert counts["200"] >= 3 and counts["400"] >= 1
    assert families["mlnb_serve_rows_scored"].samples[0].value >= 12
    doc = json.loads(request(server.port, "GET", "/openapi.json")[2])
    assert doc["openapi"].startswith("3.") and "/invocations" in doc["paths"]
    from mlnb.serving.app import State, make_app

    routes = {r.matcher.regex.pattern.rstrip("$") for r in make_app(State(None, None)).default_router.rules[0]
              .target.rules}  # type: ignore[arg-type]
    assert routes - {"/openapi.json"} == set(doc["paths"])  # every endpoint served is described
    assert sorted(doc["components"]["schemas"]["Record"]["properties"]) == sorted(X.columns)


BAD = [  # (body, content type, status, what the message must say)
    (b'{"dataframe_split": {"columns": ["mean_radius"], "data": [[1.0]]}}', "application/json", 400,
     "missing column 'mean_texture'"),
    (None, "application/json", 400, "unknown column 'extra'"),  # built below: every column + one
    (None, "application/json", 400, "column 'mean_area' (double), row 0: expected a number, got a string"),
    (None, "application/json", 400, "column 'mean_area' (double), row 0: null where a value is required"),
    (b'{"dataframe_split": ', "application/json", 400, "not valid JSON"),
    (b'{"inputs": {"mean_radius": [NaN]}}', "application/json", 400, "not valid JSON"),
    (b"[" * 50_000 + b"]" * 50_000, "application/json", 400, "nested too deeply"),
    (b'{"' + MARKER.encode() + b'": 1}', "application/json", 400, "unknown key"),
    (b"mean_radius\n1\n", "text/csv", 400, "missing column"),
    (b"<xml/>", "application/xml", 415, "Content-Type must be one of"),
    (b"{}", "application/json; charset=latin-1", 415, "charset=utf-8"),
    (b"\xff\xfe\x00", "application/json", 400, "not valid JSON"),
]


def _bad_bodies() -> list[tuple[bytes, str, int, str]]:
    X, _ = breast_cancer()
    row = X.head(1).to_dict(orient="records")[0]
    built = [json.dumps({"dataframe_records": [{**row, "extra": 1.0}]}).encode(),
             json.dumps({"dataframe_records": [{**row, "mean_area": MARKER}]}).encode(),
             json.dumps({"dataframe_records": [{**row, "mean_area": None}]}).encode()]
    it = iter(built)
    return [(body if body is not None else next(it), ctype, status, msg) for body, ctype, status, msg in BAD]


def test_bad_requests_get_clear_errors_and_the_service_stays_up(server: Server) -> None:
    for body, ctype, status, message in _bad_bodies():
        got, headers, answer = request(server.port, "POST", "/invocations", body, ctype)
        assert got == status, (message, answer[:300])
        assert headers["content-type"] == "application/json"
        error = json.loads(answer)
        assert error["error_code"] in ("BAD_REQUEST", "UNSUPPORTED_MEDIA_TYPE") and message in error["message"]
        assert MARKER.encode() not in answer or message == "unknown key"
        assert b"Traceback" not in answer and b'File "' not in answer
        assert request(server.port, "GET", "/health")[0] == 200
    for method, path, status in (("GET", "/invocations", 405), ("POST", "/health", 405), ("GET", "/nope", 404),
                                 ("DELETE", "/version", 405)):
        got, headers, answer = request(server.port, method, path)
        assert got == status and json.loads(answer)["error_code"]
        if status == 405:
            assert headers["allow"] in ("GET", "POST")


def test_oversized_bodies_get_413_before_they_are_read(server: Server) -> None:
    # a Content-Length over the 10 MiB default, and not one body byte sent: answered at once
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 11534336\r\n\r\n")
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"over the 10 MiB limit" in head
    # a chunked body (no Content-Length) is cut off once it passes the limit
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"[" * 65536
        answer = b""
        try:
            for _ in range(200):  # 12.5 MiB
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while b"\r\n\r\n" not in answer:
                part = s.recv(4096)
                if not part:
                    break
                answer += part
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert request(server.port, "GET", "/health")[0] == 200


def test_load_5000_requests_from_8_clients_without_an_error(server: Server) -> None:
    X, _ = breast_cancer()
    bodies = [split(X.iloc[[i]]) for i in range(100)] + [split(X.sample(200, random_state=i)) for i in range(5)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        mine = []
        for i in range(625):
            body = bodies[(n * 625 + i) % len(bodies)]
            start = time.perf_counter()
            try:
                conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                if resp.status != 200 or b"predictions" not in data:
                    errors.append(f"{resp.status} {data[:100]!r}")
            except Exception as exc:  # any transport error counts
                errors.append(repr(exc))
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(latencies) == 5000 and errors == []
    latencies.sort()
    print(f"\nload: 5000 requests, 8 clients: p50 {latencies[2500] * 1000:.1f} ms, "
          f"p99 {latencies[4950] * 1000:.1f} ms")


def test_fuzzing_the_openapi_document_finds_no_server_error(server: Server, tmp_path: Path) -> None:
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "schemathesis (test extra) is not installed"
    checks = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
              "response_headers_conformance,unsupported_method")
    result = subprocess.run([st, "run", f"{server.url}/openapi.json", "--checks", checks, "--max-examples", "150",
                             "--workers", "1", "--seed", "1234"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "No issues found" in result.stdout
    generated = int(result.stdout.split(" generated")[0].split()[-1])
    assert generated > 300, result.stdout[-1000:]
    assert request(server.port, "GET", "/health")[0] == 200


def test_prediction_log_records_sampled_inputs_and_outputs(server: Server) -> None:
    X, _ = breast_cancer()
    rows = X.sample(8, random_state=11)
    status, headers, body = request(server.port, "POST", "/invocations", split(rows))
    assert status == 200
    request_id, predictions = headers["x-request-id"], json.loads(body)["predictions"]
    deadline = time.monotonic() + 10
    record = None
    while time.monotonic() < deadline and record is None:
        for line in server.predictions.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # the line the writer is appending right now
                continue
            if entry["request_id"] == request_id:
                record = entry
        time.sleep(0.1)
    assert record is not None, "the request was not logged"
    assert record["rows"] == 8 and record["logged_rows"] == 5  # --log-max-rows 5
    assert record["inputs"] == rows.head(5).to_numpy().tolist() and record["predictions"] == predictions[:5]
    assert record["columns"] == list(X.columns) and record["model_name"] == "local-demo"


def _serve_once(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlnb.cli", "serve", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_tampered_model_is_refused_before_serving(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    weights = copy / "model" / "model.skops"
    weights.write_bytes(weights.read_bytes() + b"\0")
    port = free_port()
    result = _serve_once([str(copy), "--port", str(port)], tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to serve a model that changed after export" in lines[0], result.stderr
    (copy / "info.json").unlink()
    result = _serve_once([str(copy), "--port", str(port)], tmp_path)
    assert result.returncode == 1 and "no artifact_sha256 recorded" in result.stderr
    with socket.socket() as s:  # nothing was left listening
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_no_verify_is_explicit_and_reported(model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(model_dir / "model", copy / "model")
    port = free_port()
    proc = start_mlnb_serve(str(copy / "model"), port, tmp_path, "--no-verify", log=tmp_path / "log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        assert json.loads(request(port, "GET", "/version")[2])["verified"] is False
    finally:
        stop(proc)
    assert "NOT verified" in (tmp_path / "log").read_text()


def test_bad_arguments_are_one_line_errors(model_dir: Path, tmp_path: Path, server: Server) -> None:
    (tmp_path / "a-file").write_text("")
    for args, message in ((["models:/nope", "--port", "1"], "model URI 'models:/nope'"),
                          ([str(model_dir), "--port", str(free_port()), "--prediction-log",
                            str(tmp_path / "a-file" / "p.jsonl")], "cannot write the prediction log"),
                          ([str(tmp_path)], "no MLmodel file here"),
                          ([str(model_dir), "--port", str(server.port)], "address already in use")):
        result = _serve_once(args, tmp_path)
        assert result.returncode in (1, 2) and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def _answered_by_worker(port: int) -> dict[str, float]:
    """/invocations answers per worker, from one scrape of /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(request(port, "GET", "/metrics")[2].decode()):
        for sample in family.samples:
            if sample.name == "mlnb_serve_requests_total" and sample.labels.get("endpoint") == "/invocations":
                counts[sample.labels["worker"]] = counts.get(sample.labels["worker"], 0) + sample.value
    return counts


def test_workers_serve_together_and_shut_down_cleanly(model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    proc = start_mlnb_serve(str(model_dir), port, tmp_path, "--workers", "2", "--poll-interval", "0",
                            log=tmp_path / "log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) == 2
        X, _ = breast_cancer()
        # Every worker answers on its own: which one accepts a connection is the kernel's choice, so
        # each is addressed by stopping (SIGSTOP) the other; the one left must serve everything.
        workers = set()
        for alone in children:
            others = [c for c in children if c.pid != alone.pid]
            for other in others:
                other.suspend()
            try:
                before = _answered_by_worker(port)
                for i in range(5):
                    status, _, _body = request(port, "POST", "/invocations", split(X.iloc[[i]]))
                    assert status == 200
                after = _answered_by_worker(port)  # every worker's series (the answering one's are current)
                answered = {w for w, n in after.items() if n - before.get(w, 0) >= 5}
                assert len(answered) == 1, (before, after)
                workers |= answered
            finally:
                for other in others:
                    other.resume()
        assert workers == {"0", "1"}  # both answered
        children[0].kill()  # a worker that dies is replaced
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pids = {c.pid for c in psutil.Process(proc.pid).children()}
            if len(pids) == 2 and children[0].pid not in pids:
                break
            time.sleep(0.2)
        new = psutil.Process(proc.pid).children()
        assert len(new) == 2 and children[0].pid not in {c.pid for c in new}
        wait_ready(f"http://127.0.0.1:{port}", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        _gone, alive = psutil.wait_procs(new, timeout=10)
        assert alive == []
    finally:
        stop(proc)
    assert "exited (killed by SIGKILL)" in (tmp_path / "log").read_text()


def test_workers_serve_a_model_that_uses_openmp(tmp_path: Path) -> None:
    """HistGradientBoosting predicts with OpenMP threads: a model run before fork() hangs the workers."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlnb.core.integrity import model_sha256
    from mlnb.core.io import write_json

    X, y = breast_cancer()
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, y)
    mlflow.sklearn.save_model(model, str(tmp_path / "m" / "model"), signature=infer_signature(X, model.predict(X)),
                              input_example=X.head(3), skops_trusted_types=[
                                  "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"])
    write_json(tmp_path / "m" / "info.json", {"artifact_sha256": model_sha256(tmp_path / "m" / "model")})
    port = free_port()
    proc = start_mlnb_serve(str(tmp_path / "m"), port, tmp_path, "--workers", "2", "--poll-interval", "0",
                            log=tmp_path / "log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        for i in range(10):
            status, _, body = request(port, "POST", "/invocations", split(X.iloc[i * 20:(i + 1) * 20]))
            assert status == 200
            assert json.loads(body)["predictions"] == model.predict(X.iloc[i * 20:(i + 1) * 20]).tolist()
    finally:
        assert stop(proc) == 0
