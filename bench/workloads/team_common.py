"""Shared by the team-store workloads (Shipyard's venv and MLflow's): the model, timing, results, profiles."""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

FEATURES = 1024


def big_model(seed: int, mib: float) -> tuple[Any, Any]:
    """A fitted scikit-learn LinearRegression whose weights take ``mib`` MiB (float64 ``coef_`` of shape
    (targets, 1024)): one large array, as in a real wide model; each seed gives other bytes."""
    import numpy as np
    from sklearn.linear_model import LinearRegression

    targets = max(1, int(mib * 1024 * 1024 / 8 / FEATURES))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, FEATURES))
    model = LinearRegression().fit(x, rng.standard_normal((4, 4)))  # fitted attributes, then the wide weights
    model.coef_ = rng.standard_normal((targets, FEATURES))
    model.intercept_ = rng.standard_normal(targets)
    return model, x


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def emit(results: dict[str, Any]) -> None:
    sys.stdout.write("RESULT " + json.dumps(results) + "\n")
    sys.stdout.flush()


def profiled(label: str, fn: Callable[[], Any], top: int = 18) -> float:
    """Run ``fn`` under cProfile; print its top functions by own time and by cumulative time (PROFILE lines)."""
    prof = cProfile.Profile()
    start = time.perf_counter()
    prof.runcall(fn)
    took = time.perf_counter() - start
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(order).print_stats(top)
        body = out.getvalue()
        body = body[body.find("ncalls"):] if "ncalls" in body else body
        sys.stdout.write(f"PROFILE {label} ({took:.3f} s, by {order}):\n{body}\n")
    sys.stdout.flush()
    return took


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))
