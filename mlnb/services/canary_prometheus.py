"""``mlnb canary status --prometheus URL``: the figures of :mod:`mlnb.services.canary_status`, read from a
Prometheus server that scrapes ``mlnb serve`` instead of from the service itself.

Prometheus' HTTP API (``GET /api/v1/query``, instant queries) is asked, for each series the figures need, its
sum over every worker, pod and target (``sum by`` only the labels the figures read), of:

- by default, ``increase(SERIES[WINDOW])``: the figures over the last WINDOW (``10m``), across restarts (a
  counter reset counts as Prometheus counts it). Prometheus extrapolates an increase towards the window's
  edges, so counts are estimates (rounded to whole numbers); a counter first seen at N (``mlnb serve``
  creates a status code's request counter at its first answer) counts from N;
- with ``totals``, ``last_over_time(SERIES[WINDOW])``: each series' latest value seen within WINDOW, i.e. the
  counters since each process started, summed: what ``--url`` reads from the service (a process not scraped
  within WINDOW drops out).

Either way the answers become the ``Samples`` of a scrape and go through the same
:func:`~mlnb.services.canary_status.summarize` as ``--url``: one code path for error rate, p50/p99 and
agreement. The version each variant serves is the instant ``mlnb_serve_model_info`` (the current scrape;
pods serving different versions are listed ``1,2``). The split (traffic share, shadow) is no series: it is
left out.

``selector`` restricts every query to a plain list of label matchers (``app_kubernetes_io_name="x",
namespace=~"ml|staging"``), validated here: nothing else reaches the query.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from mlnb.errors import UserInputError
from mlnb.services.canary_status import Samples, Status, summarize

DEFAULT_WINDOW = "10m"
INVOCATIONS = "/invocations"
MODEL_INFO = "mlnb_serve_model_info"
LIVE = ("mlnb_serve_live_metric", "mlnb_serve_live_labelled_rows")  # gauges: the quality on /feedback labels
# (series, the labels the figures read, a matcher of its own): what summarize() reads
SERIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("mlnb_serve_requests_total", ("endpoint", "status", "variant"), f'endpoint="{INVOCATIONS}"'),
    ("mlnb_serve_request_duration_seconds_count", ("variant",), ""),
    ("mlnb_serve_request_duration_seconds_bucket", ("variant", "le"), ""),
    ("mlnb_serve_scoring_errors_total", ("variant",), ""),
    ("mlnb_serve_compared_rows_total", (), ""),
    ("mlnb_serve_agreeing_rows_total", (), ""),
    ("mlnb_serve_shadow_dropped_total", (), ""),
)
_MATCHER = r'[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=~|!~|!=|=)\s*"(?:[^"\\\n]|\\.)*"'
_SELECTOR = re.compile(rf"\s*{_MATCHER}(?:\s*,\s*{_MATCHER})*\s*")
_WINDOW = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")


def check_selector(selector: str) -> str:
    """``selector`` if it is a plain list of label matchers (``name="v"``, ``!=``, ``=~``, ``!~``), else
    a one-line :class:`UserInputError`."""
    if not selector.strip():
        return ""
    if not _SELECTOR.fullmatch(selector):
        raise UserInputError(f"--selector {selector!r}: expected label matchers such as "
                             f'app_kubernetes_io_name="breast-cancer",namespace=~"ml|staging" (no braces, '
                             "double-quoted values)")
    if re.search(r'(?:^|,)\s*__', selector):
        raise UserInputError(f"--selector {selector!r}: labels starting with __ are Prometheus' own")
    return selector.strip()


def check_window(window: str) -> str:
    """``window`` if it is a Prometheus duration longer than zero (``10m``, ``1h30m``), else one line."""
    if not _WINDOW.fullmatch(window) or not any(c in "123456789" for c in window):
        raise UserInputError(f"--window {window!r}: expected a Prometheus duration such as 10m, 1h or 90s")
    return window


def queries(window: str = DEFAULT_WINDOW, selector: str = "", totals: bool = False) -> dict[str, str]:
    """{series: the PromQL that reads it}, the version query under :data:`MODEL_INFO`."""
    window, selector = check_window(window), check_selector(selector)
    fn = "last_over_time" if totals else "increase"
    out = {}
    for name, by, own in SERIES:
        matchers = ",".join(m for m in (own, selector) if m)
        grouping = f"sum by ({', '.join(by)})" if by else "sum"
        out[name] = f"{grouping} ({fn}({name}{{{matchers}}}[{window}]))"
    out[MODEL_INFO] = f"count by (variant, version) ({MODEL_INFO}{{{selector}}})"
    for gauge in LIVE:  # ratios per process: kept apart (summarize weighs them by each one's labelled rows)
        out[gauge] = (f"max by (metric, variant, version, worker, instance) "
                      f"(last_over_time({gauge}{{{selector}}}[{window}]))")
    return out


def _answer(base: str, promql: str, timeout: float) -> list[dict[str, Any]]:
    """The instant vector Prometheus answers ``promql`` with (one line for anything else)."""
    url = f"{base.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # http(s) only: checked by the caller
            body = resp.read()
    except urllib.error.HTTPError as exc:  # Prometheus says why in JSON (400 bad_data, 422, 503)
        body = exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise UserInputError(f"--prometheus {base}: cannot reach it: {getattr(exc, 'reason', exc)}") from None
    try:
        said = json.loads(body)
    except ValueError:
        said = None
    if not isinstance(said, dict) or said.get("status") not in ("success", "error"):
        raise UserInputError(f"--prometheus {base}: not Prometheus' API (its answer to /api/v1/query is not "
                             "Prometheus' JSON; is this the server's base URL?)")
    if said["status"] == "error":
        reason = (str(said.get("error") or "no reason given").splitlines() or [""])[0]
        raise UserInputError(f"--prometheus {base}: {said.get('errorType', 'error')}: {reason} (query: {promql})")
    data = said.get("data") or {}
    if data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        raise UserInputError(f"--prometheus {base}: expected an instant vector for {promql}, "
                             f"got {data.get('resultType')!r}")
    return list(data["result"])


def samples(base: str, window: str = DEFAULT_WINDOW, selector: str = "", totals: bool = False,
            timeout: float = 10.0) -> Samples:
    """The series :func:`summarize` reads, as Prometheus answers them (see the module doc)."""
    if not base.startswith(("http://", "https://")):
        raise UserInputError(f"--prometheus {base}: expected http://HOST:PORT (the Prometheus server)")
    out: Samples = {}
    versions: dict[str, set[str]] = {}
    for name, promql in queries(window, selector, totals).items():
        for row in _answer(base, promql, timeout):
            labels = {str(k): str(v) for k, v in (row.get("metric") or {}).items()}
            try:
                value = float(row["value"][1])
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            if math.isnan(value):
                continue
            if name == MODEL_INFO:
                versions.setdefault(labels.get("variant", ""), set()).add(labels.get("version", ""))
                continue
            if name in LIVE:  # one process: its pod (instance) and its worker
                labels["worker"] = f"{labels.pop('instance', '')}/{labels.get('worker', '')}"
            out[(name, tuple(sorted(labels.items())))] = value
    for variant, found in versions.items():
        joined = ",".join(sorted(found, key=lambda v: (len(v), v)))
        out[(MODEL_INFO, (("variant", variant), ("version", joined)))] = 1.0
    if not out:
        where = f" matching {selector}" if selector.strip() else ""
        raise UserInputError(f"--prometheus {base}: no mlnb serve series{where} in the last {window} "
                             "(is Prometheus scraping the service's /metrics?)")
    return out


def status(base: str, window: str = DEFAULT_WINDOW, selector: str = "", totals: bool = False) -> Status:
    """The canary's figures from the Prometheus server at ``base`` (its base URL, e.g. http://prometheus:9090)."""
    return summarize(samples(base, window, selector, totals))
