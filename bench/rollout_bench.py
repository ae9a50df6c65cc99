"""Local rollout: how soon it decides, and how soon a canary that starts failing is rolled back.

    PYTHONPATH=src:. python bench/rollout_bench.py [--interval 1] [--rate 250]

Two real rollouts on the model server in this process, under a steady synthetic load (a client thread):

1. a good version through 25% / analysis / 75% / analysis: for every interval, the time from the interval's
   end to its decision (scrape, rules, step machine, weight applied), against the interval;
2. a version that answers well, then fails on half its inputs from a moment the bench picks (a flag file),
   with failure_limit 1: the time from that moment to the weight back at 0, in intervals (target: <= 2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=250.0)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="rollout-bench-"))
    os.environ["SHIPYARD_HOME"] = str(tmp / ".shipyard")
    os.chdir(tmp)
    from tests.rollout_models import StartsFailing, Threshold, rows

    import shipyard
    from shipyard.core.deploy.config import AnalysisSpec
    from shipyard.core.deploy.rollout import Plan, parse_steps
    from shipyard.interfaces.serving import rollout as local
    from shipyard.wiring import build, settings_from_environment

    flag = tmp / "fail-now"
    examples = [[0.25, 0.3], [0.95, 0.8]]
    with shipyard.start_run(name="bench"):
        for model in (Threshold(), Threshold(), StartsFailing(str(flag))):
            shipyard.log_model(model, "bench", flavor="python", examples=examples)
    svc = build(settings_from_environment(), tmp)
    stable, good, failing = (svc.registry.resolve(f"bench@{v}") for v in (1, 2, 3))
    interval = f"{round(args.interval * 1000)}ms"
    spec = AnalysisSpec(interval=interval, count=3, failure_limit=1, min_requests=15, latency_slack_ms=200.0)
    plan = Plan.of(parse_steps("25,analysis,75,analysis"), spec)

    # 1. the decision at each interval: tick k comes after the scrape due at k intervals, the rules, the step
    # machine and the weight applied; its lateness is how long deciding took
    ticks: list[local.Tick] = []
    began = time.monotonic()
    state = local.run_rollout(svc.registry, good, stable, plan, spec, traffic=rows(), rate=args.rate,
                              on_tick=ticks.append)
    took = time.monotonic() - began
    lags = [(t.elapsed - k * args.interval) * 1000 for k, t in enumerate(ticks) if k]
    print(f"good version: {state.status} in {took:.2f} s, {len(lags)} intervals of {args.interval:g} s; "
          f"decision after the interval's end: median {statistics.median(lags):.1f} ms, max {max(lags):.1f} ms "
          f"({max(lags) / 10 / args.interval:.1f}% of an interval)")

    # 2. a canary that starts failing mid-rollout
    onset: list[float] = []
    rolled_back: list[float] = []

    def fail_later() -> None:
        time.sleep(args.interval * 2.5)  # during the first analysis step, mid-interval
        flag.touch()
        onset.append(time.monotonic())

    def on_tick(tick: local.Tick) -> None:
        if tick.state.status == "rolled back" and not rolled_back:
            rolled_back.append(time.monotonic())

    threading.Thread(target=fail_later, daemon=True).start()
    state = local.run_rollout(svc.registry, failing, stable, plan, spec, traffic=rows(), rate=args.rate,
                              on_tick=on_tick)
    if state.status != "rolled back" or not onset:
        print(f"failing version: {state.status} ({state.why}): not rolled back")
        sys.exit(1)
    after = rolled_back[0] - onset[0]
    print(f"failing version: rolled back {after:.2f} s after it started failing = {after / args.interval:.2f} "
          f"intervals (target <= 2): {state.why}")
    svc.close()


if __name__ == "__main__":
    main()
