"""The alert rules and the Grafana dashboard `mlnb init` writes to `monitoring/` (mlnb/templates/project/monitoring):
the rules pass `promtool check rules` and fire in `promtool test rules` (Debian's promtool), the dashboard's
queries parse, every series and label value either queries is one `mlnb serve` really exports (its
:class:`~mlnb.serving.metrics.Metrics`), and the dashboard is well formed (datasource input, targets, ids,
layout). The series check is shown to catch a misspelled series, a foreign one and a label value nothing has."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from mlnb.services.scaffold import template_files
from mlnb.serving.drift import DriftGauges
from mlnb.serving.feedback import Feedback
from mlnb.serving.metrics import Metrics

REPO = Path(__file__).resolve().parents[3]
MONITORING = REPO / "mlnb" / "templates" / "project" / "monitoring"
ALERTS, DASHBOARD = MONITORING / "alerts.yaml", MONITORING / "grafana-dashboard.json"
RULE_TESTS = REPO / "tests" / "fixtures" / "monitoring" / "alerts_test.yaml"
PROMTOOL = "/usr/bin/promtool"
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
PROMETHEUS_OWN = {"up"}  # series Prometheus makes itself for every target
# labels a scrape adds (a static config: job, instance; pods by annotations: namespace, pod labels) and le
TARGET_LABELS = {"job", "instance", "namespace", "app_kubernetes_io_name", "le"}
GRAFANA = {"$__rate_interval": "1m", "$__range": "1h", "$job": ".*", "$instance": ".*"}
needs_promtool = pytest.mark.skipif(not Path(PROMTOOL).is_file(), reason=f"{PROMTOOL} not found: install Debian's "
                                    "prometheus (apt-get install -y prometheus; `make test` does)")


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def exported() -> list[Any]:
    """Every sample `mlnb serve` renders once a champion and a challenger have answered, failed, raised, been
    compared, swapped and dropped records, with drift gauges (--drift-reference) and labels on /feedback."""
    import pandas as pd

    reference = pd.DataFrame({"a": [float(i) for i in range(100)], "b": [float(i % 7) for i in range(100)],
                              "y": [i % 2 for i in range(100)]})
    drift = DriftGauges(reference, ["a", "b"], "y", window=100)
    drift.offer(reference.head(10), [1] * 10)
    drift.update()
    drift.close()
    feedback = Feedback()
    feedback.answered("0" * 32, "challenger", "2", [1, 0])
    feedback.receive([{"request_id": "0" * 32, "labels": [1, 1]}])
    m = Metrics("0")
    m.extra = lambda worker: [*feedback.render(worker), *drift.render(worker)]
    m.models.update(champion=("m", "1"), challenger=("m", "2"))
    for variant in ("champion", "challenger"):
        m.request("/invocations", 200, variant)
        m.scored(0.003, 2, variant)
        m.count("swaps", variant=variant)
        m.count("swap_failures", variant=variant)
    m.request("/invocations", 500, "champion")
    m.request("/invocations", 400, "challenger")
    m.request("/health", 200)
    m.scored_error("challenger")
    m.compared(2, 1)
    m.count("log_dropped")
    m.count("shadow_dropped")
    return [s for family in text_string_to_metric_families(m.render()) for s in family.samples]


# --- the series check ---------------------------------------------------------------------------------------

_STRING = r'"(?:[^"\\]|\\.)*"'
_SELECTOR = re.compile(rf"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{{((?:{_STRING}|[^}}\"])*)\}}")
_MATCHER = re.compile(rf"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*({_STRING})")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}


def _matches(labels: dict[str, str], name: str, op: str, want: str) -> bool:
    have = labels.get(name, "")
    return {"=": have == want, "!=": have != want, "=~": bool(re.fullmatch(want, have)),
            "!~": not re.fullmatch(want, have)}[op]


def unknown_series(expr: str, samples: list[Any]) -> list[str]:
    """What in ``expr`` is not a series (or label, or label value) in ``samples``: [] when all of it is."""
    problems = []
    names = {s.name for s in samples} | PROMETHEUS_OWN
    labels = {k for s in samples for k in s.labels} | TARGET_LABELS
    for metric, matchers in _SELECTOR.findall(expr):  # metric{a="x"}: some sample has them all
        own = [(n, op, json.loads(v)) for n, op, v in _MATCHER.findall(matchers) if n not in TARGET_LABELS]
        if metric in names - PROMETHEUS_OWN and not any(
                s.name == metric and all(_matches(s.labels, n, op, v) for n, op, v in own) for s in samples):
            problems.append(f"{metric}{{{matchers}}} matches nothing mlnb serve exports")
    for group in _GROUPING.findall(expr):
        problems += [f"label {k} is on no series" for k in (x.strip() for x in group.split(",")) if k and
                     k not in labels]
    bare = re.sub(r"\[[^\]]*\]", " ", re.sub(r"\{(?:" + _STRING + r'|[^}"])*\}', " ", _GROUPING.sub(" ", expr)))
    for m in _IDENT.finditer(bare):
        word, after = m.group(), bare[m.end():].lstrip()[:1]
        if after == "(" or word in KEYWORDS:  # a function or an aggregation; an operator
            continue
        if word not in names:
            problems.append(f"{word} is no series mlnb serve exports")
    return problems


def test_every_series_the_rules_and_the_dashboard_query_is_one_mlnb_serve_exports() -> None:
    samples = exported()
    dash = dashboard()
    exprs = [r["expr"] for r in rules()] + dashboard_exprs(dash)
    assert len(rules()) == 9 and len(dashboard_exprs(dash)) == 20
    for expr in exprs:
        assert unknown_series(expr, samples) == [], expr
    used = {w for e in exprs for w in re.findall(r"mlnb_serve_[a-z_]+", e)}
    assert len(used) >= 18, used
    for var in dash["templating"]["list"]:  # label_values(SERIES{...}, LABEL)
        series, label = re.fullmatch(r"label_values\(([^,]+),\s*(\w+)\)", var["definition"]).groups()
        assert unknown_series(series, samples) == [] and label in TARGET_LABELS, var["definition"]


def test_the_series_check_catches_a_misspelled_series_a_foreign_one_and_an_impossible_label_value() -> None:
    samples = exported()
    good = 'sum by (variant) (rate(mlnb_serve_requests_total{job=~"$job", endpoint="/invocations"}[5m]))'
    assert unknown_series(good, samples) == []
    assert unknown_series(good.replace("requests_total", "requets_total"), samples) == [
        "mlnb_serve_requets_total is no series mlnb serve exports"]
    assert unknown_series("rate(http_requests_total[5m])", samples) == [
        "http_requests_total is no series mlnb serve exports"]
    assert unknown_series(good.replace("/invocations", "/invocation"), samples) == [
        'mlnb_serve_requests_total{job=~"$job", endpoint="/invocation"} matches nothing mlnb serve exports']
    assert unknown_series(good.replace("by (variant)", "by (model)"), samples) == ["label model is on no series"]
    assert unknown_series("max(mlnb_serve_drift_score) > 0.2", samples) == [  # it is mlnb_serve_drift_psi
        "mlnb_serve_drift_score is no series mlnb serve exports"]
    assert unknown_series('mlnb_serve_live_metric{metric="auc"} < 0.9', samples) == [
        'mlnb_serve_live_metric{metric="auc"} matches nothing mlnb serve exports']
    # each rule, its first series misspelled, is caught
    for rule in rules():
        series = re.search(r"mlnb_serve_[a-z_]+", rule["expr"]).group()
        assert unknown_series(rule["expr"].replace(series, series + "x"), samples), rule["alert"]


# --- the rules ------------------------------------------------------------------------------------------

def test_every_rule_is_an_alert_with_a_severity_a_duration_and_annotations() -> None:
    found = rules()
    names = [r["alert"] for r in found]
    assert len(set(names)) == len(names) == 9
    for rule in found:
        assert re.fullmatch(r"[0-9]+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@needs_promtool
def test_promtool_checks_the_rules() -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "SUCCESS: 9 rules found" in result.stdout, result.stdout + result.stderr


@needs_promtool
def test_the_alerts_fire_on_synthetic_series_and_a_wrong_threshold_fails_the_rule_tests(tmp_path: Path) -> None:
    result = subprocess.run([PROMTOOL, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # the same tests against rules whose error-rate threshold is 5 %: the champion's 2 % no longer fires
    broken = ALERTS.read_text().replace("          > 0.01\n", "          > 0.05\n")
    assert broken != ALERTS.read_text()
    (tmp_path / "alerts.yaml").write_text(broken)
    tests = yaml.safe_load(RULE_TESTS.read_text())
    tests["rule_files"] = [str(tmp_path / "alerts.yaml")]
    (tmp_path / "alerts_test.yaml").write_text(yaml.safe_dump(tests))
    result = subprocess.run([PROMTOOL, "test", "rules", str(tmp_path / "alerts_test.yaml")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0 and "MlnbServeErrorRateHigh" in result.stdout + result.stderr


@needs_promtool
def test_the_dashboards_queries_parse(tmp_path: Path) -> None:
    """promtool parses each query (Grafana's variables filled in) as a recording rule's expression."""
    def check(exprs: list[str]) -> subprocess.CompletedProcess:
        recorded = []
        for i, expr in enumerate(exprs):
            for var, value in GRAFANA.items():
                expr = expr.replace(var, value)
            recorded.append({"record": f"dashboard:query_{i}", "expr": expr})
        path = tmp_path / "dashboard_rules.yaml"
        path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
        return subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)

    exprs = dashboard_exprs(dashboard())
    result = check(exprs)
    assert result.returncode == 0, result.stdout + result.stderr
    assert check([*exprs, "sum by (variant) (rate(mlnb_serve_requests_total[5m])"]).returncode != 0  # unbalanced


# --- the dashboard --------------------------------------------------------------------------------------

def test_the_dashboard_is_well_formed() -> None:
    dash = dashboard()
    assert dash["__inputs"] == [{"name": "DS_PROMETHEUS", "label": "Prometheus", "description":
                                 "The Prometheus that scrapes mlnb serve", "type": "datasource",
                                 "pluginId": "prometheus", "pluginName": "Prometheus"}]
    assert isinstance(dash["schemaVersion"], int) and dash["schemaVersion"] >= 39 and dash["uid"] and dash["title"]
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p["type"] in {"timeseries", "stat"} and p["datasource"] == DATASOURCE, p["title"]
        assert p["targets"] and len({t["refId"] for t in p["targets"]}) == len(p["targets"]), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE and t["expr"].strip(), p["title"]
    for var in dash["templating"]["list"]:
        assert var["datasource"] == DATASOURCE
    # no datasource of anyone's Grafana is written in: the only uids are the input and Grafana's own
    uids = set(re.findall(r'"uid":\s*"([^"]*)"', DASHBOARD.read_text()))
    assert uids == {"${DS_PROMETHEUS}", "-- Grafana --", "mlnb-serve"}
    titles = " | ".join(p["title"] for p in panels)
    for needed in ("Requests per second", "Error rate", "Latency p50 / p99", "agreement", "Model version",
                   "swaps", "Workers", "Drifted input features", "Live quality"):
        assert needed in titles, needed


def test_mlnb_init_writes_them_as_they_are() -> None:
    files = template_files("demo")
    assert files["monitoring/alerts.yaml"] == ALERTS.read_text()  # {{ $labels.x }} is Prometheus', left alone
    assert files["monitoring/grafana-dashboard.json"] == DASHBOARD.read_text()
    assert "monitoring/alerts_test.yaml" not in files  # the rule tests stay in mlnb's own tests
