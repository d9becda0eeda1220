"""`mlnb canary status --prometheus URL` against a real Prometheus (Debian's `/usr/bin/prometheus`, scraping every
second) that scrapes a real `mlnb serve --challenger ... --traffic 20 --drift-reference ...` (labels posted to
/feedback): the figures agree with the traffic the test sent and with `--url`; the shipped alert rules load
and evaluate on the real series (the challenger's disagreement and the inputs' drift go pending); every query
of the shipped Grafana dashboard returns data; bad input and a failing Prometheus are one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml

from mlnb.services import canary_prometheus
from mlnb.services.canary_status import status as service_status
from tests.conftest import REPO, run_mlnb
from tests.integration.test_serve_challenger import _body, _many, _wait_for
from tests.serving_fixtures import (
    MODEL_NAME,
    breast_cancer,
    free_port,
    register_versions,
    start_mlnb_serve,
    stop,
    wait_ready,
)

pytestmark = pytest.mark.integration
PROMETHEUS = "/usr/bin/prometheus"
MONITORING = REPO / "mlnb" / "templates" / "project" / "monitoring"
JOB = "mlnb-serve"
if not Path(PROMETHEUS).is_file():
    pytest.skip(f"{PROMETHEUS} not found: install Debian's prometheus (apt-get install -y prometheus; `make test` "
                "does) to run these tests", allow_module_level=True)


def _query(base: str, promql: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        said = json.loads(resp.read())
    assert said["status"] == "success", (promql, said)
    return said["data"]["result"]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _start_prometheus(root: Path, target_port: int, port: int) -> subprocess.Popen:
    """Its own process (the Debian service is never started): a 1 s scrape of the service, mlnb's alert rules."""
    config = root / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(MONITORING / "alerts.yaml")],
        "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}],
    }))
    return subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=open(root / "prometheus.log", "wb"),
                            start_new_session=True)


def _figures(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    figures["by"] = {v["variant"]: v for v in figures["variants"]}
    return figures


def _one_line(result: subprocess.CompletedProcess, said: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and said in result.stderr, result.stderr


def test_canary_status_from_prometheus_agrees_with_the_traffic_and_the_service(tmp_path: Path) -> None:
    root = tmp_path
    (root / "pipeline.yaml").write_text("tasks: []\n")
    (root / "env.yaml").write_text(f"mlflow:\n  experiment: serve-test\n  model_name: {MODEL_NAME}\n")
    client = register_versions(root, [1.0, 0.0005])  # the same Cs as test_serve_challenger: _body() needs them
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    client.set_registered_model_alias(MODEL_NAME, "challenger", "2")
    body, _v1, _v2 = _body()
    X, y = breast_cancer()
    X.assign(diagnosis=y).to_parquet(root / "reference.parquet")  # the drift gauges' reference
    port, prom_port = free_port(), free_port()
    url, prom = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{prom_port}"
    serve = start_mlnb_serve(f"models:/{MODEL_NAME}@champion", port, root, "--challenger",
                             f"models:/{MODEL_NAME}@challenger", "--traffic", "20", "--drift-reference",
                             str(root / "reference.parquet"), "--drift-target", "diagnosis", log=root / "serve.log")
    prometheus = _start_prometheus(root, port, prom_port)
    try:
        wait_ready(url, serve)
        wait_ready(prom, prometheus, timeout=30, path="/-/ready")

        # both variants' request counters known to Prometheus before the counted traffic (mlnb serve makes a
        # status code's counter at its first answer: an increase() counts from the first value it saw)
        def seen() -> set[str]:
            promql = 'mlnb_serve_requests_total{endpoint="/invocations"}'
            return {r["metric"]["variant"] for r in _query(prom, promql)}

        keys = [f"user-{i}" for i in range(20)]  # sticky keys: the same variants every run
        answered = _many(port, body, 20, threads=1, keys=keys)
        warmup = Counter(a[2]["X-Model-Variant"] for a in answered)
        assert set(warmup) == {"champion", "challenger"}, warmup
        labels = {"feedback": [{"request_id": a[2]["X-Request-Id"], "labels": a[3]} for a in answered]}
        with urllib.request.urlopen(urllib.request.Request(f"{url}/feedback", json.dumps(labels).encode(),
                                                           {"Content-Type": "application/json"}), timeout=10) as r:
            assert json.loads(r.read())["matched"] == 20
        _wait_for(lambda: seen() == {"champion", "challenger"}, timeout=15, what="Prometheus scraping the warm-up")

        answers = _many(port, body, 1000, threads=4)
        assert {a[1] for a in answers} == {200}
        sent = Counter(a[2]["X-Model-Variant"] for a in answers)
        total = sent + warmup
        _wait_for(lambda: service_status(url).compared_rows == 2 * total["challenger"], timeout=30,
                  what="every challenger answer compared with the champion")
        from_service = service_status(url)
        _wait_for(lambda: canary_prometheus.status(prom, totals=True).to_dict()["variants"]
                  == from_service.to_dict()["variants"], timeout=20, what="Prometheus scraping the last counts")

        # --totals: the service's own counters, through Prometheus: exactly what --url reads, and what was sent
        by_url = _figures(run_mlnb(root, "canary", "status", "--url", url, "--json"))
        totals = _figures(run_mlnb(root, "canary", "status", "--prometheus", prom, "--totals", "--json"))
        for variant in ("champion", "challenger"):
            assert totals["by"][variant]["requests"] == by_url["by"][variant]["requests"] == total[variant]
            assert totals["by"][variant] == by_url["by"][variant]  # versions, errors, p50, p99 too
        assert (totals["by"]["champion"]["version"], totals["by"]["challenger"]["version"]) == ("1", "2")
        assert totals["compared_rows"] == by_url["compared_rows"] == 2 * total["challenger"]
        assert totals["agreement"] == by_url["agreement"] == 0.5  # _body(): the challenger agrees on 1 row of 2
        assert totals["split"] == {} and by_url["split"]["traffic_percent"] == 20

        # the default: increase() over the last 10 minutes, which Prometheus extrapolates (never below the
        # counted traffic: the warm-up made every series before it), same error rate and agreement
        recent = _figures(run_mlnb(root, "canary", "status", "--prometheus", prom, "--json", "--selector",
                                   f'job="{JOB}",instance=~"127.0.0.1:.*"'))
        for variant in ("champion", "challenger"):
            got = recent["by"][variant]
            assert sent[variant] <= got["requests"] <= 1.5 * total[variant], (variant, got, sent, warmup)
            assert got["error_rate"] == 0 and got["version"] == totals["by"][variant]["version"]
            assert 0 < got["p50_ms"] <= got["p99_ms"]
        share = recent["by"]["challenger"]["requests"] / sum(v["requests"] for v in recent["variants"])
        assert share == pytest.approx(sent["challenger"] / sent.total(), abs=0.03), (recent["variants"], sent)
        assert recent["agreement"] == pytest.approx(0.5, abs=0.01)
        table = run_mlnb(root, "canary", "status", "--prometheus", prom, "--window", "5m")
        assert table.returncode == 0, table.stderr
        assert "challenger  2" in table.stdout and "over the last 5m (Prometheus' increase)" in table.stdout

        # the shipped alert rules: loaded, evaluated on the real series without error. Pending (not yet for
        # their `for:`): the challenger's 50 % disagreement on well over 100 rows, and the inputs' drift (the
        # test serves the same two rows over and over); the predictions' drift when its PSI reaches 0.2
        def alerts() -> dict[str, dict]:
            return {a["labels"]["alertname"]: a for a in _get_json(f"{prom}/api/v1/alerts")["data"]["alerts"]}

        expected = {"MlnbServeChallengerDisagrees", "MlnbServeInputDrift"}
        _wait_for(lambda: expected <= set(alerts()), timeout=15, what="the disagreement and drift alerts")
        found = alerts()
        prediction_psi = float(_query(prom, "max(mlnb_serve_prediction_drift_psi)")[0]["value"][1])
        assert set(found) == expected | ({"MlnbServePredictionDrift"} if prediction_psi >= 0.2 else set()), found
        assert {a["state"] for a in found.values()} == {"pending"}
        assert float(found["MlnbServeChallengerDisagrees"]["value"]) == pytest.approx(0.5, abs=0.01)
        assert found["MlnbServeInputDrift"]["labels"]["variant"] == "champion"
        rules = [r for g in _get_json(f"{prom}/api/v1/rules")["data"]["groups"] for r in g["rules"]]
        assert len(rules) == 9 and all(r["health"] == "ok" and not r.get("lastError") for r in rules), rules

        # every query of the shipped dashboard answers with data ($job, $instance: what Grafana would fill in)
        dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
        subs = {"$__rate_interval": "1m", "$__range": "10m", "$job": JOB, "$instance": ".+"}
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for var, value in subs.items():
                    expr = expr.replace(var, value)
                assert _query(prom, expr), f"{panel['title']}: no data for {expr}"

        # bad input and a failing Prometheus: one line, exit 2
        _one_line(run_mlnb(root, "canary", "status", "--url", url, "--prometheus", prom), "give one")
        _one_line(run_mlnb(root, "canary", "status", "--prometheus", prom, "--selector", 'job="nope"'),
                  'no mlnb serve series matching job="nope" in the last 10m')
        _one_line(run_mlnb(root, "canary", "status", "--prometheus", prom, "--selector",
                           f'job="{JOB}"}} or vector(1) or x{{a="b"'), "expected label matchers")
        _one_line(run_mlnb(root, "canary", "status", "--prometheus", prom, "--selector", 'variant=~"("'),
                  "bad_data: ")  # Prometheus' own error (the regex does not compile)
        _one_line(run_mlnb(root, "canary", "status", "--prometheus", url), "not Prometheus' API")
        _one_line(run_mlnb(root, "canary", "status", "--prometheus", f"http://127.0.0.1:{free_port()}"),
                  "cannot reach it")
        _one_line(run_mlnb(root, "canary", "status", "--prometheus", prom, "--window", "ten minutes"),
                  "expected a Prometheus duration")
        _one_line(run_mlnb(root, "canary", "status", "--url", url, "--totals"), "only with --prometheus")
    finally:
        stop(prometheus)
        assert stop(serve) == 0
        shutil.rmtree(root / "tsdb", ignore_errors=True)
