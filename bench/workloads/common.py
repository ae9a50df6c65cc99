"""Shared by both workload scripts: timing and the data every tool gets."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

N_CALLS = 2000
N_RUNS = 200
N_VERSIONS = 50
SEARCH_REPEATS = 20


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_of(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm
    return statistics.median(timed(fn) for _ in range(repeats))


def emit(results: dict[str, Any]) -> None:
    sys.stdout.write("RESULT " + json.dumps(results) + "\n")


def model_and_data() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    return LogisticRegression(max_iter=300).fit(x, y), x
