"""Prometheus metrics of the scoring service, rendered in the text exposition format (version 0.0.4).

Per process: with ``--workers N`` each worker counts its own requests (the worker's index is a label
on every sample, so a scraper that reaches several workers can tell them apart).
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counters and one latency histogram; every update takes a lock (cheap next to a request)."""

    def __init__(self, worker: str = "0") -> None:
        self.worker = worker
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.bucket_counts = [0] * (len(BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.rows = 0
        self.swaps = 0
        self.swap_failures = 0
        self.log_dropped = 0
        self.model: tuple[str, str] = ("", "")

    def request(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1

    def scored(self, seconds: float, rows: int) -> None:
        with self._lock:
            self.bucket_counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self.latency_sum += seconds
            self.latency_count += 1
            self.rows += rows

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def render(self) -> str:
        w = self.worker
        with self._lock:
            out = [
                "# HELP mlnb_serve_requests_total HTTP requests answered, by endpoint and status code.",
                "# TYPE mlnb_serve_requests_total counter",
            ]
            for (endpoint, status), n in sorted(self.requests.items()):
                out.append(f"mlnb_serve_requests_total{_labels(endpoint=endpoint, status=str(status), worker=w)} {n}")
            out += [
                "# HELP mlnb_serve_request_duration_seconds Time to parse, validate and score one "
                "/invocations request.",
                "# TYPE mlnb_serve_request_duration_seconds histogram",
            ]
            cumulative = 0
            for bound, n in zip((*BUCKETS, float("inf")), self.bucket_counts, strict=True):
                cumulative += n
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append(f"mlnb_serve_request_duration_seconds_bucket{_labels(le=le, worker=w)} {cumulative}")
            out.append(f"mlnb_serve_request_duration_seconds_sum{_labels(worker=w)} {self.latency_sum!r}")
            out.append(f"mlnb_serve_request_duration_seconds_count{_labels(worker=w)} {self.latency_count}")
            for name, help_, value in (
                ("rows_scored", "Rows scored by the model.", self.rows),
                ("model_swaps", "Times a new model version replaced the served one.", self.swaps),
                ("model_swap_failures", "New versions that failed to fetch, verify, load or warm.",
                 self.swap_failures),
                ("prediction_log_dropped", "Prediction log records dropped because the writer fell behind.",
                 self.log_dropped),
            ):
                out += [f"# HELP mlnb_serve_{name}_total {help_}", f"# TYPE mlnb_serve_{name}_total counter",
                        f"mlnb_serve_{name}_total{_labels(worker=w)} {value}"]
            name, version = self.model
            out += ["# HELP mlnb_serve_model_info The model version being served (value 1).",
                    "# TYPE mlnb_serve_model_info gauge",
                    f"mlnb_serve_model_info{_labels(name=name, version=version, worker=w)} 1"]
        return "\n".join(out) + "\n"
