"""`mlnb canary status --prometheus`: the queries asked (increase or latest value, the selector inside every
selector, nothing injected), the checks of --selector and --window, and that the series asked for are all the
figures need (a real Prometheus answers them in tests/integration/test_canary_prometheus.py)."""

from __future__ import annotations

import pytest

from mlnb.errors import UserInputError
from mlnb.services import canary_prometheus as cp
from mlnb.services.canary_status import parse, summarize
from mlnb.serving.metrics import Metrics


def test_the_queries_sum_the_increase_over_the_window_or_the_latest_values() -> None:
    q = cp.queries()
    assert q["mlnb_serve_requests_total"] == ('sum by (endpoint, status, variant) (increase(mlnb_serve_requests_total'
                                              '{endpoint="/invocations"}[10m]))')
    assert q["mlnb_serve_compared_rows_total"] == "sum (increase(mlnb_serve_compared_rows_total{}[10m]))"
    assert q[cp.MODEL_INFO] == "count by (variant, version) (mlnb_serve_model_info{})"
    q = cp.queries("1h", 'app_kubernetes_io_name="bc", namespace=~"ml|staging"', totals=True)
    assert q["mlnb_serve_request_duration_seconds_bucket"] == (
        'sum by (variant, le) (last_over_time(mlnb_serve_request_duration_seconds_bucket'
        '{app_kubernetes_io_name="bc", namespace=~"ml|staging"}[1h]))')
    assert q["mlnb_serve_requests_total"].count('endpoint="/invocations",app_kubernetes_io_name="bc"') == 1
    assert q[cp.MODEL_INFO].endswith('{app_kubernetes_io_name="bc", namespace=~"ml|staging"})')


def test_the_series_asked_for_are_all_the_figures_need() -> None:
    """summarize() on only the series Prometheus is asked for = summarize() on the whole scrape."""
    m = Metrics("0")
    m.models.update(champion=("m", "1"), challenger=("m", "2"))
    for i, variant in enumerate(("champion", "challenger", "champion")):
        m.request("/invocations", 200, variant)
        m.scored(0.002 * (i + 1), 3, variant)
    m.request("/invocations", 503, "champion")
    m.request("/health", 500)
    m.scored_error("challenger")
    m.compared(4, 3)
    m.count("shadow_dropped", 2)
    every = parse(m.render())
    asked = {name for name, _by, _own in cp.SERIES} | {cp.MODEL_INFO}
    only = {key: v for key, v in every.items() if key[0] in asked}
    assert len(only) < len(every)
    full = summarize(every).to_dict()
    assert summarize(only).to_dict() == full
    assert full["variants"][0]["requests"] == 3 and full["variants"][0]["errors"] == 1
    assert (full["compared_rows"], full["agreeing_rows"], full["shadow_dropped"]) == (4, 3, 2)


@pytest.mark.parametrize("selector", [
    'app_kubernetes_io_name="breast-cancer"',
    ' namespace=~"ml|staging" , app_kubernetes_io_name!="x" ',
    'job!~"a.*",instance="10.0.0.1:8080"',
    'path="a \\" quote, a } brace and a { inside"',
    'job="x"\n',
    "",
])
def test_plain_label_matchers_are_accepted(selector: str) -> None:
    assert cp.check_selector(selector) == selector.strip()


@pytest.mark.parametrize("selector", [
    'job="x"} or vector(1) or up{a="b"',
    '{job="x"}',
    "job=x",
    "job='x'",
    'job="x",',
    'job="x" job="y"',
    'job=="x"',
    'job="x\ny"',
    '__name__="up"',
    'job="x", __meta_pod="y"',
    'job="x") by (variant',
    'job="unterminated',
])
def test_anything_else_is_refused_in_one_line(selector: str) -> None:
    with pytest.raises(UserInputError) as err:
        cp.queries(selector=selector)
    assert str(err.value).startswith(f"--selector {selector!r}: ") and "\n" not in str(err.value)


@pytest.mark.parametrize(("window", "ok"), [("10m", True), ("1h30m", True), ("90s", True), ("500ms", True),
                                            ("2d", True), ("0m", False), ("0s0m", False), ("10", False),
                                            ("-5m", False), ("10 m", False), ("10m]", False), ("", False)])
def test_the_window_is_a_prometheus_duration_longer_than_zero(window: str, ok: bool) -> None:
    if ok:
        assert cp.check_window(window) == window
    else:
        with pytest.raises(UserInputError, match="--window"):
            cp.check_window(window)


def test_the_url_must_be_http() -> None:
    with pytest.raises(UserInputError, match="expected http://HOST:PORT"):
        cp.samples("file:///etc/passwd")
