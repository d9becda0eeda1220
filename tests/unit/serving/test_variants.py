"""Who answers a request when a challenger is served, and the comparison thread (mlnb.serving.variants)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd

from mlnb.serving.metrics import Metrics
from mlnb.serving.variants import CHALLENGER, CHAMPION, Comparer, Router, Slot, Split, agreeing, bucket


class _Model:
    def __init__(self, version: str) -> None:
        self.identity = type("I", (), {"model_version": version})()


def test_a_routing_key_always_lands_in_the_same_bucket_and_the_share_is_the_traffic() -> None:
    assert bucket("user-42") == bucket("user-42") and 0 <= bucket("user-42") < 10_000
    router = Router(Split(traffic=20), Slot(_Model("2")))  # type: ignore[arg-type]
    keys = [f"user-{i}" for i in range(20_000)]
    first = [router.pick(k) for k in keys]
    assert first == [router.pick(k) for k in keys]  # sticky
    share = first.count(CHALLENGER) / len(first)
    assert 0.19 < share < 0.21
    unkeyed = [router.pick(None) for _ in range(20_000)]
    assert 0.19 < unkeyed.count(CHALLENGER) / len(unkeyed) < 0.21


def test_no_challenger_or_shadow_means_the_champion_answers() -> None:
    assert {Router(Split(traffic=50), Slot()).pick(str(i)) for i in range(200)} == {CHAMPION}
    shadow = Router(Split(shadow=True), Slot(_Model("2")))  # type: ignore[arg-type]
    assert {shadow.pick(str(i)) for i in range(200)} == {CHAMPION}
    assert {Router(Split(traffic=100), Slot(_Model("2"))).pick(str(i)) for i in range(200)} == {CHALLENGER}  # type: ignore[arg-type]


def test_agreement_counts_rows() -> None:
    assert agreeing(np.array([0, 1, 1]), np.array([0, 1, 0])) == 2
    assert agreeing(np.array([0.5, 1.0]), np.array([0.5 + 1e-9, 2.0])) == 1
    assert agreeing(np.array([[1, 2], [3, 4]]), np.array([[1, 2], [3, 5]])) == 1
    assert agreeing(np.array([1, 2]), np.array([1, 2, 3])) == 0
    assert agreeing(["a", "b"], ["a", "c"]) == 1


def test_a_raising_or_slow_challenger_is_counted_and_never_waited_for() -> None:
    metrics = Metrics()
    release = threading.Event()

    def score(variant: str, frame: Any) -> Any:
        if frame["x"].iloc[0] < 0:
            raise ValueError("no")
        release.wait(5)
        return np.zeros(len(frame), dtype=int)

    comparer = Comparer(metrics, score, size=2)
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    start = time.perf_counter()
    comparer.offer(CHALLENGER, "r1", pd.DataFrame({"x": [-1.0]}), np.array([0]))
    for i in range(6):  # the thread is stuck on the first slow copy: the queue fills, the rest are dropped
        comparer.offer(CHALLENGER, f"r{i}", frame, np.array([0, 1]))
    assert time.perf_counter() - start < 0.5
    release.set()
    comparer.close()
    assert metrics.errors[CHALLENGER] == 1
    assert metrics.shadow_dropped >= 3
    assert metrics.compared_rows >= 2 and metrics.agreeing_rows == metrics.compared_rows // 2
