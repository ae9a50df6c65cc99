"""The tracking workload through Shipyard (run inside the project's venv)."""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import N_CALLS, N_RUNS, N_VERSIONS, SEARCH_REPEATS, emit, median_of, model_and_data, timed

import shipyard


def main() -> None:
    big = int(os.environ.get("BENCH_BIG_RUNS", "10000"))
    r: dict[str, float] = {}
    with shipyard.start_run(name="calls"):
        shipyard.log_metric("warm", 0.0)
        r["log_metric_2000_calls_s"] = timed(lambda: [shipyard.log_metric("m", i * 0.1, step=i)
                                                       for i in range(N_CALLS)])
    with shipyard.start_run(name="batch"):
        batch = [(f"m{i % 20}", i * 0.1, i // 20) for i in range(N_CALLS)]
        r["log_batch_2000_s"] = timed(lambda: shipyard.log_batch(metrics=batch))

    def runs() -> None:
        for i in range(N_RUNS):
            with shipyard.start_run(name=f"run-{i}"):
                shipyard.log_params({f"p{j}": f"v{i}-{j}" for j in range(10)})
                shipyard.log_metrics({f"m{j}": ((i * 7 + j) % 100) / 100 for j in range(10)})
    r["runs_200_s"] = timed(runs)
    r["search_200_s"] = median_of(lambda: shipyard.search_runs("metrics.m0 > 0.5"), SEARCH_REPEATS)
    r["search_200_matches"] = len(shipyard.search_runs("metrics.m0 > 0.5"))

    model, x = model_and_data()

    def register_one() -> None:
        with shipyard.start_run(name="register"):
            shipyard.log_model(model, "bench-model", examples=x[:5])
    r["register_first_s"] = timed(register_one)  # cold: environment capture happens here
    r["register_50_s"] = timed(lambda: [register_one() for _ in range(N_VERSIONS)])
    # Shipyard captures the environment once per process; this is what capturing it again would cost, without
    # the cache (every distribution read) and with it (what a new process pays when nothing was installed)
    from shipyard.adapters.environments.probe import capture
    from shipyard.core.environments.capture import to_bytes
    from shipyard.interfaces.api import _svc

    home = _svc().settings.home
    r["env_capture_s"] = median_of(lambda: to_bytes(capture()), 5)
    r["env_capture_cached_s"] = median_of(lambda: to_bytes(capture(home)), 5)

    if big:
        from shipyard.interfaces.api import _svc

        tracker = _svc().tracker
        start = time.perf_counter()
        for i in range(big - N_RUNS):
            run = tracker.start_run(name=f"big-{i}")
            tracker.log_params(run.id, {f"p{j}": f"v{j}" for j in range(10)})
            tracker.log_metrics(run.id, {f"m{j}": ((i * 13 + j) % 1000) / 1000 for j in range(10)})
            tracker.end_run(run.id)
        r["fill_to_big_s"] = time.perf_counter() - start
        r["search_big_s"] = median_of(lambda: shipyard.search_runs("metrics.m0 > 0.5"), 5)
        r["search_big_selective_s"] = median_of(lambda: shipyard.search_runs("metrics.m0 > 0.99"), 5)
        r["search_big_runs"] = big
    emit(r)


if __name__ == "__main__":
    main()
