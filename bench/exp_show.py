"""`shipyard exp show` over 1,000 pipeline runs: the target is under 300 ms.

    python bench/exp_show.py [--pipeline-runs 1000] [--repeats 7]

The pipeline runs are written straight through the metadata store (SQLite, as a laptop runs it): each is
a 3-stage pipeline (prepare -> train -> evaluate) where prepare ran in one invocation out of five and was
reused by the others (``shipyard.pipeline_uses``), train records 6 params and evaluate 6 metrics; each stage
run records 3 inputs and 1 output by digest, as the runner does. Timed:
the query and join in-process (what the command does past Python's start), and the whole CLI
(`shipyard exp show`, a table of 50 rows, and `--json` of all 1,000), beside `shipyard --help` for the
interpreter's and Typer's own start on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from shipyard.config import Settings, default_db_url  # noqa: E402
from shipyard.core.artifacts.digest import Digest  # noqa: E402
from shipyard.core.lineage.records import ArtifactRecord, CodeVersion, Metric, RunRecord, RunStatus  # noqa: E402
from shipyard.core.lineage.search import Condition  # noqa: E402
from shipyard.wiring import build  # noqa: E402
from shipyard.wiring.experiments import experiments  # noqa: E402


def digest(text: str) -> Digest:
    return Digest.of_bytes(text.encode())


def populate(home: Path, count: int) -> None:
    svc = build(Settings(home=home, db_url=default_db_url(home), store_path=home / "objects",
                         actor="bench@local"), home.parent)
    meta = svc.meta
    now = time.time() - count * 10
    prepare_run = ""
    for i in range(count):
        pid = uuid.uuid4().hex
        commit = f"{i // 10:040x}"
        used: dict[str, str] = {}
        stages = ["train", "evaluate"]
        if i % 5 == 0:
            stages.insert(0, "prepare")
        else:
            used["prepare"] = prepare_run
        for j, stage in enumerate(stages):
            run_id = uuid.uuid4().hex
            tags = {"shipyard.stage": stage, "shipyard.pipeline_run": pid}
            if used:
                tags["shipyard.pipeline_uses"] = json.dumps(used, sort_keys=True)
            start = now + i * 10 + j
            meta.create_run(RunRecord(id=run_id, name=stage, experiment="pipeline", status=RunStatus.RUNNING,
                                      start_time=start, end_time=None, user="bench", host="bench", pid=1,
                                      code=CodeVersion(commit=commit, branch="main", repo=str(home.parent)),
                                      tags=tags))
            if stage == "prepare":
                meta.log_params(run_id, {"prepare.split": "0.2", "prepare.seed": str(i)})
                prepare_run = run_id
            elif stage == "train":
                meta.log_params(run_id, {f"train.p{k}": str(i * k % 17) for k in range(6)})
            else:
                meta.log_metrics(run_id, [Metric(f"m{k}", (i * (k + 1)) % 101 / 100, 0, start) for k in range(6)])
            # what the runner records of a stage: the digests of its dependencies and its outputs
            meta.add_inputs(run_id, {f"{stage}/dep{k}.py": digest(f"{i}-{stage}-{k}") for k in range(3)})
            meta.add_artifact(run_id, ArtifactRecord(f"{stage}.out", digest(f"{i}-{stage}-out"), 100, False))
            meta.end_run(run_id, RunStatus.FINISHED, start + 0.5)
    svc.close()


def median_ms(fn: object, repeats: int) -> tuple[float, float]:
    """Medians of wall time and of CPU time (this process's and its children's), in ms. On a shared machine
    the CPU time is what an idle one would take as wall time, for work that waits on nothing."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = _cpu()
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - before)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def _cpu() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline-runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "proj"
        home = project / ".shipyard"
        home.mkdir(parents=True)
        (project / "shipyard.yaml").write_text("version: 1\n")
        start = time.perf_counter()
        populate(home, args.pipeline_runs)
        print(f"wrote {args.pipeline_runs} pipeline runs in {time.perf_counter() - start:.1f} s")
        # as a user's shell runs it: no SHIPYARD_* of this session, and bytecode written (as bench/data.py)
        env = {**{k: v for k, v in os.environ.items()
                  if not k.startswith("SHIPYARD_") and k != "PYTHONDONTWRITEBYTECODE"},
               "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "200"}
        settings = Settings(home=home, db_url=default_db_url(home), store_path=home / "objects",
                            actor="bench@local")
        svc = build(settings, project)
        rows = experiments(svc, limit=args.pipeline_runs)
        assert len(rows) == args.pipeline_runs, len(rows)
        assert all("prepare.seed" in r.params and "m0" in r.metrics for r in rows)  # reused stages joined
        in_process = median_ms(lambda: experiments(svc, limit=args.pipeline_runs), args.repeats)
        tagged = [Condition("tags", "shipyard.pipeline_run", ">", "")]
        lean = median_ms(lambda: svc.meta.search_runs(tagged, 10**6, None, lineage=False), args.repeats)
        full = median_ms(lambda: svc.meta.search_runs(tagged, 10**6, None), args.repeats)
        svc.close()

        def cli(*extra: str) -> None:
            subprocess.run([sys.executable, "-m", "shipyard", *extra], cwd=project, env=env, check=True,
                           capture_output=True)

        # the CLI reads the project's own database (the default URL): the one populated above
        shown = subprocess.run([sys.executable, "-m", "shipyard", "exp", "show", "--json", "-n", "1"], cwd=project,
                               env=env, check=True, capture_output=True, text=True).stdout
        assert len(json.loads(shown)) == 1, shown
        table = median_ms(lambda: cli("exp", "show"), args.repeats)
        all_json = median_ms(lambda: cli("exp", "show", "--json", "-n", str(args.pipeline_runs)), args.repeats)
        helped = median_ms(lambda: cli("--help"), args.repeats)
        listed = median_ms(lambda: cli("runs", "list", "-n", "1"), args.repeats)
    print(f"exp show over {args.pipeline_runs} pipeline runs ({args.repeats} repeats, medians; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
    print(f"  {'':52} {'wall':>9} {'CPU':>9}")
    for label, (w, c) in ((f"query + join in-process (all {args.pipeline_runs} rows)", in_process),
                          ("  the stage runs' query (params, metrics, tags)", lean),
                          ("  the same with their inputs and outputs", full),
                          ("CLI `shipyard exp show` (table, 50 rows)", table),
                          (f"CLI `shipyard exp show --json -n {args.pipeline_runs}`", all_json),
                          ("CLI `shipyard --help` (start-up alone)", helped),
                          ("CLI `shipyard runs list -n 1` (start-up + database)", listed)):
        print(f"  {label:52} {w:6.0f} ms {c:6.0f} ms")
    print("  target: under 300 ms")

if __name__ == "__main__":
    main()
