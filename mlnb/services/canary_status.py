"""``mlnb canary status``: how the champion and the challenger are doing, from the service's own ``/metrics``.
(:mod:`mlnb.services.canary_prometheus` reads the same series from a Prometheus server instead.)

With ``mlnb serve --workers N`` each scrape of ``/metrics`` is answered by one worker, which adds the other
workers' series (at most a second old), each labelled ``worker``: the status scrapes until no new worker
shows up for several scrapes in a row, keeps each worker's latest counters, then sums them. Figures per variant:

- requests: the ``/invocations`` requests it answered (a shadow challenger answers none: its copies scored);
- error rate: the requests answered 5xx or on which the model raised, over all it was asked to score;
- latency p50/p99: from the ``mlnb_serve_request_duration_seconds`` histogram, interpolated within a bucket
  (as Prometheus' ``histogram_quantile``);
- agreement: the rows both variants scored (the shadow copies, or the challenger's share) on which the
  challenger predicted what the champion did.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from mlnb.errors import UserInputError

_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)$')
_LABEL = re.compile(r'(?P<key>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<value>(?:[^"\\]|\\.)*)"')
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
_PER_WORKER = ("mlnb_serve_live_metric", "mlnb_serve_live_labelled_rows")


def parse(text: str) -> Samples:
    """Samples of Prometheus' text format: (name, sorted labels) -> value."""
    out: Samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line.strip())
        if not m:
            continue
        labels = tuple(sorted((k, _unescape(v)) for k, v in _LABEL.findall(m["labels"] or "")))
        try:
            out[(m["name"], labels)] = float(m["value"])
        except ValueError:
            continue
    return out


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], value)


def _get(url: str, timeout: float) -> str:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # the user's own service (http/https only)
            return str(resp.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserInputError(f"--url {url}: cannot read it: {reason}") from None


def scrape(base: str, quiet_rounds: int = 6, max_scrapes: int = 60, timeout: float = 10.0) -> Samples:
    """Every worker's latest samples from ``base``/metrics (see the module doc)."""
    if not base.startswith(("http://", "https://")):
        raise UserInputError(f"--url {base}: expected http://HOST:PORT (the mlnb serve service)")
    latest: dict[str, Samples] = {}
    quiet = 0
    for _ in range(max_scrapes):
        by_worker: dict[str, Samples] = defaultdict(dict)
        for key, value in parse(_get(base.rstrip("/") + "/metrics", timeout)).items():
            by_worker[dict(key[1]).get("worker", "")][key] = value  # one scrape may carry every worker's
        quiet = quiet + 1 if set(by_worker) <= set(latest) else 0
        latest.update(by_worker)
        if quiet >= quiet_rounds:
            break
    merged: Samples = defaultdict(float)
    for samples in latest.values():
        for key, value in samples.items():
            name, labels = key
            if name in _PER_WORKER:  # ratios: combined in summarize, weighted by each worker's labelled rows
                merged[key] = value
                continue
            if name == "mlnb_serve_model_info":
                merged[(name, tuple(kv for kv in labels if kv[0] != "worker"))] = value
                continue
            merged[(name, tuple(kv for kv in labels if kv[0] != "worker"))] += value
    return dict(merged)


@dataclass
class VariantStatus:
    variant: str
    version: str = ""
    requests: int = 0
    scored: int = 0
    errors: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    live: dict[str, float] = field(default_factory=dict)  # accuracy, f1 on /feedback labels; labelled_rows

    @property
    def error_rate(self) -> float | None:
        asked = max(self.requests, self.scored + self.errors)
        return self.errors / asked if asked else None

    def to_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "version": self.version, "requests": self.requests, "scored": self.scored,
                "errors": self.errors, "error_rate": self.error_rate, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
                "live": self.live}


@dataclass
class Status:
    variants: list[VariantStatus]
    compared_rows: int = 0
    agreeing_rows: int = 0
    dropped: int = 0
    split: dict[str, Any] = field(default_factory=dict)

    @property
    def agreement(self) -> float | None:
        return self.agreeing_rows / self.compared_rows if self.compared_rows else None

    def to_dict(self) -> dict[str, Any]:
        return {"variants": [v.to_dict() for v in self.variants], "compared_rows": self.compared_rows,
                "agreeing_rows": self.agreeing_rows, "agreement": self.agreement, "shadow_dropped": self.dropped,
                "split": self.split}


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``histogram_quantile``: cumulative (upper bound, count) pairs -> the q-quantile, linear in a bucket."""
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower  # beyond the last finite bucket: its bound is all that is known
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def summarize(samples: Samples, split: dict[str, Any] | None = None) -> Status:
    """The figures (module doc) from summed samples; counts are rounded (a Prometheus increase is an estimate)."""

    def total(name: str, **want: str) -> float:
        return sum(v for (n, labels), v in samples.items() if n == name
                   and all(dict(labels).get(k) == w for k, w in want.items()))

    versions = {dict(labels).get("variant", ""): dict(labels).get("version", "")
                for (n, labels) in samples if n == "mlnb_serve_model_info"}
    out = []
    for variant in ("champion", "challenger"):
        if variant not in versions and not total("mlnb_serve_request_duration_seconds_count", variant=variant):
            continue
        status = VariantStatus(variant, versions.get(variant, ""))
        status.requests = round(total("mlnb_serve_requests_total", endpoint="/invocations", variant=variant))
        status.scored = round(total("mlnb_serve_request_duration_seconds_count", variant=variant))
        failed = sum(v for (n, labels), v in samples.items() if n == "mlnb_serve_requests_total"
                     and dict(labels).get("variant") == variant and dict(labels).get("status", "0")[:1] == "5")
        status.errors = round(failed + total("mlnb_serve_scoring_errors_total", variant=variant))
        buckets = [(float(dict(labels)["le"]), v) for (n, labels), v in samples.items()
                   if n == "mlnb_serve_request_duration_seconds_bucket" and dict(labels).get("variant") == variant]
        for attr, q in (("p50_ms", 0.5), ("p99_ms", 0.99)):
            value = quantile(q, buckets)
            setattr(status, attr, None if value is None else round(value * 1000, 2))
        status.live = _live(samples, variant, status.version)
        out.append(status)
    return Status(out, round(total("mlnb_serve_compared_rows_total")), round(total("mlnb_serve_agreeing_rows_total")),
                  round(total("mlnb_serve_shadow_dropped_total")), split or {})


def _live(samples: Samples, variant: str, version: str) -> dict[str, float]:
    """The quality on /feedback labels of ``variant`` at ``version``, each worker weighted by its labelled rows."""
    rows: dict[str, float] = {}
    for (name, labels), value in samples.items():
        got = dict(labels)
        if name == "mlnb_serve_live_labelled_rows" and got.get("variant") == variant and got.get("version") == version:
            rows[got.get("worker", "")] = value
    total = sum(rows.values())
    if not total:
        return {}
    out = {"labelled_rows": total}
    for (name, labels), value in samples.items():
        got = dict(labels)
        if name == "mlnb_serve_live_metric" and got.get("variant") == variant and got.get("version") == version:
            metric = got.get("metric", "")
            out[metric] = out.get(metric, 0.0) + value * rows.get(got.get("worker", ""), 0) / total
    return {k: round(v, 6) for k, v in out.items()}


def status(url: str) -> Status:
    """The canary's figures from the ``mlnb serve`` at ``url``."""
    samples = scrape(url)
    try:
        split = json.loads(_get(url.rstrip("/") + "/version", 10.0)).get("split") or {}
    except ValueError:
        split = {}
    return summarize(samples, split)
