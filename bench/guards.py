"""What the hardening guards cost: confinement checks, the project lock, bounded YAML parsing.

    python bench/guards.py

Issue 7 asks that confinement checks and locks cost microseconds, not milliseconds. Each figure is
the median of several repeats, per call, in this process (no competitor: these are Shipyard's own
guards, measured against doing the same work without them where that exists).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from shipyard.core.boundedyaml import load_yaml
from shipyard.core.workspace.paths import Confined, safe_relpath
from shipyard.core.workspace.projectlock import project_lock


def per_call(fn: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """Median seconds per call of ``fn`` over ``repeats`` rounds of ``calls`` calls."""
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        rounds.append((time.perf_counter() - start) / calls)
    return statistics.median(rounds)


def main() -> None:
    paths = [f"data/d{i % 100:02d}/f{i:05d}.bin" for i in range(20_000)]
    with tempfile.TemporaryDirectory(prefix="bench-guards-") as tmp:
        root = Path(tmp)
        (root / ".shipyard").mkdir()
        it = iter(paths * 10)
        rel = per_call(lambda: safe_relpath(next(it)), 20_000)
        confined = Confined(root)
        it2 = iter(paths * 10)
        target = per_call(lambda: confined.target(next(it2)), 20_000)  # folders checked once, then remembered
        fresh = per_call(lambda: Confined(root).target("data/d00/new/deeper/f.bin"), 2_000)  # 4 lstats each

        def lock_once() -> None:
            with project_lock(root):
                pass

        lock = per_call(lock_once, 2_000)

    config = "version: 1\nstages:\n" + "".join(
        f"  s{i}:\n    cmd: python src/s{i}.py\n    deps: [data/raw, src/s{i}.py]\n    params: [train.C]\n"
        f"    outs: [out/s{i}]\n" for i in range(30))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    plain = per_call(lambda: yaml.load(config, Loader=loader), 200)  # the C safe loader
    bounded = per_call(lambda: load_yaml(config, "shipyard.yaml"), 200)

    print("| guard | cost per call |")
    print("|---|---|")
    print(f"| `safe_relpath` (one lock or manifest path) | {rel * 1e6:.2f} µs |")
    print(f"| `Confined.target`, 20,000 files in 100 folders (a folder is checked once) | {target * 1e6:.2f} µs |")
    print(f"| `Confined.target`, a new 4-level path (4 `lstat`s) | {fresh * 1e6:.1f} µs |")
    print(f"| project lock, uncontended acquire + release | {lock * 1e6:.1f} µs |")
    print(f"| a 30-stage shipyard.yaml: bounded loader / libyaml safe loader | {bounded * 1e3:.2f} ms / "
          f"{plain * 1e3:.2f} ms |")


if __name__ == "__main__":
    main()
