"""One process that tracks a run and then runs stages keeps its SQLite database usable.

SQLite's locks are POSIX fcntl locks: closing *any* descriptor of the database file drops every
lock the process holds on it. A check that opened the file with plain ``open()`` made a later
stage process believe it was the last user, remove the WAL, and fail the parent with
"disk I/O error" (seen in `make demo` on a fresh project).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import shipyard
from shipyard.wiring import open_pipeline, settings_from_environment

STAGE = "python -c \"import shipyard; shipyard.log_metric('{m}', 1.0); open('{out}', 'w').write('1')\""


def test_stages_after_a_tracked_run_in_the_same_process_all_succeed(project: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    (project / "shipyard.yaml").write_text(
        "version: 1\nstages:\n"
        f"  a:\n    cmd: {STAGE.format(m='x', out='a.txt')}\n    outs: [a.txt]\n"
        f"  b:\n    cmd: {STAGE.format(m='y', out='b.txt')}\n    deps: [a.txt]\n    outs: [b.txt]\n"
    )
    with shipyard.start_run(name="before the pipeline"):  # leaves pooled connections open in this process
        shipyard.log_metric("m", 1.0)
    report = open_pipeline(settings_from_environment(), os.environ).run()
    assert [(o.stage, o.result) for o in report.outcomes] == [("a", "ran"), ("b", "ran")]
    with shipyard.start_run(name="after the pipeline"):
        shipyard.log_metric("m", 2.0)
