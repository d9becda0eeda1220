"""Prometheus metrics of the scoring service, rendered in the text exposition format (version 0.0.4).

Every series is labelled by ``variant`` (``champion``; ``challenger`` when one is served, see
:mod:`mlnb.serving.variants`; empty for endpoints other than ``/invocations``).

Per process: with ``--workers N`` each worker counts its own requests (the worker's index is a label
on every sample, so a scraper that reaches several workers can tell them apart).
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counters and latency histograms, per variant (``champion``, ``challenger``: see
    :mod:`mlnb.serving.variants`); every update takes a lock (cheap next to a request)."""

    def __init__(self, worker: str = "0") -> None:
        self.worker = worker
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int, str], int] = defaultdict(int)
        self.buckets: dict[str, list[int]] = defaultdict(lambda: [0] * (len(BUCKETS) + 1))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.rows: dict[str, int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)  # the model raised on validated rows
        self.swaps: dict[str, int] = defaultdict(int)
        self.swap_failures: dict[str, int] = defaultdict(int)
        self.compared_rows = 0
        self.agreeing_rows = 0
        self.log_dropped = 0
        self.shadow_dropped = 0
        self.models: dict[str, tuple[str, str]] = {"champion": ("", "")}
        self.extra: Callable[[str], list[str]] | None = None  # more series (the drift gauges), by worker

    @property
    def model(self) -> tuple[str, str]:
        """The champion's (name, version)."""
        return self.models["champion"]

    @model.setter
    def model(self, value: tuple[str, str]) -> None:
        self.models["champion"] = value

    def request(self, endpoint: str, status: int, variant: str = "") -> None:
        with self._lock:
            self.requests[(endpoint, status, variant)] += 1

    def scored(self, seconds: float, rows: int, variant: str = "champion") -> None:
        with self._lock:
            self.buckets[variant][bisect.bisect_left(BUCKETS, seconds)] += 1
            self.latency_sum[variant] += seconds
            self.latency_count[variant] += 1
            self.rows[variant] += rows

    def scored_error(self, variant: str) -> None:
        with self._lock:
            self.errors[variant] += 1

    def compared(self, rows: int, agreeing: int) -> None:
        with self._lock:
            self.compared_rows += rows
            self.agreeing_rows += agreeing

    def count(self, name: str, n: int = 1, variant: str = "champion") -> None:
        """``swaps``/``swap_failures`` (per variant), ``log_dropped``, ``shadow_dropped``."""
        with self._lock:
            value = getattr(self, name)
            if isinstance(value, dict):
                value[variant] += n
            else:
                setattr(self, name, value + n)

    def render(self) -> str:
        w = self.worker
        with self._lock:
            variants = sorted({"champion", *self.models, *self.latency_count, *self.errors, *self.swaps})
            out = [
                "# HELP mlnb_serve_requests_total HTTP requests answered, by endpoint, status code and the variant "
                "that answered (/invocations only).",
                "# TYPE mlnb_serve_requests_total counter",
            ]
            for (endpoint, status, variant), n in sorted(self.requests.items()):
                labels = _labels(endpoint=endpoint, status=str(status), variant=variant, worker=w)
                out.append(f"mlnb_serve_requests_total{labels} {n}")
            out += [
                "# HELP mlnb_serve_request_duration_seconds Time to parse, validate and score one "
                "/invocations request (a challenger's shadow copy: the time to score it).",
                "# TYPE mlnb_serve_request_duration_seconds histogram",
            ]
            for variant in variants:
                cumulative = 0
                for bound, n in zip((*BUCKETS, float("inf")), self.buckets[variant], strict=True):
                    cumulative += n
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    out.append(f"mlnb_serve_request_duration_seconds_bucket{_labels(le=le, variant=variant, worker=w)}"
                               f" {cumulative}")
                out.append(f"mlnb_serve_request_duration_seconds_sum{_labels(variant=variant, worker=w)} "
                           f"{self.latency_sum[variant]!r}")
                out.append(f"mlnb_serve_request_duration_seconds_count{_labels(variant=variant, worker=w)} "
                           f"{self.latency_count[variant]}")
            for name, help_, values in (
                ("rows_scored", "Rows scored by the model.", self.rows),
                ("scoring_errors", "Requests (or shadow copies) whose validated rows the model raised on.",
                 self.errors),
                ("model_swaps", "Times a new model version replaced the served one.", self.swaps),
                ("model_swap_failures", "New versions that failed to fetch, verify, load or warm.",
                 self.swap_failures),
            ):
                out += [f"# HELP mlnb_serve_{name}_total {help_}", f"# TYPE mlnb_serve_{name}_total counter"]
                out += [f"mlnb_serve_{name}_total{_labels(variant=v, worker=w)} {values[v]}" for v in variants]
            for name, help_, value in (
                ("compared_rows", "Rows scored by both variants (shadow copies, the challenger's share).",
                 self.compared_rows),
                ("agreeing_rows", "Compared rows on which the challenger's prediction equals the champion's.",
                 self.agreeing_rows),
                ("shadow_dropped", "Copies not compared because the comparing thread fell behind.",
                 self.shadow_dropped),
                ("prediction_log_dropped", "Prediction log records dropped because the writer fell behind.",
                 self.log_dropped),
            ):
                out += [f"# HELP mlnb_serve_{name}_total {help_}", f"# TYPE mlnb_serve_{name}_total counter",
                        f"mlnb_serve_{name}_total{_labels(worker=w)} {value}"]
            out += ["# HELP mlnb_serve_model_info The model version each variant serves (value 1).",
                    "# TYPE mlnb_serve_model_info gauge"]
            for variant, (name, version) in sorted(self.models.items()):
                out.append(f"mlnb_serve_model_info{_labels(name=name, version=version, variant=variant, worker=w)} 1")
        if self.extra is not None:
            out += self.extra(w)
        return "\n".join(out) + "\n"


def merge(texts: list[str]) -> str:
    """Several processes' renders as one exposition: each family's HELP and TYPE once, then every process's
    samples of it (they differ by their ``worker`` label). Families keep the order they first appear in."""
    families: dict[str, list[str]] = {}
    heads: dict[str, list[str]] = {}
    for text in texts:
        current = ""
        for line in text.splitlines():
            if line.startswith("# HELP ") or line.startswith("# TYPE "):
                current = line.split(" ", 3)[2]
                heads.setdefault(current, [])
                if len(heads[current]) < 2 and not any(h.startswith(line[:7]) for h in heads[current]):
                    heads[current].append(line)
                families.setdefault(current, [])
            elif line and not line.startswith("#"):
                families.setdefault(current, []).append(line)
    out = []
    for name, samples in families.items():
        out += heads.get(name, []) + samples
    return "\n".join(out) + "\n"
