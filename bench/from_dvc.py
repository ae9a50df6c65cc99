"""`shipyard init --from-dvc` of a DVC project tracking 20,000 small files vs DVC's own `dvc add` of them.

    python bench/from_dvc.py [--dvc PATH] [--files 20000] [--repeats 3]

The target (issue 13): converting a DVC cache of N files takes at most what `dvc add` of the same N
files takes. Each repeat makes a fresh git + DVC repository with N files of 4 KiB in 100 folders and
times `dvc add` (copy mode: DVC's default reflink,copy where the filesystem has no reflinks); then,
in that project as `dvc add` left it, `shipyard init --from-dvc` (which hashes every file with md5
and SHA-256, checks each against DVC's record and copies it into Shipyard's store). A second figure
converts the same project with the workspace copies removed (a fresh clone after `dvc fetch`): every
file is then read from DVC's cache (no stage needs the data, so none is written into the workspace:
`shipyard data checkout` would do that).
The two tools alternate; medians are reported. Every step is a real CLI invocation, timed from outside.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from data import DVC_SPEC, dvc_exe, git_repo, make_files

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    os.sync()  # no tool pays for another's dirty pages
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dvc", help="a dvc executable (default: bench/.venvs/dvc, installed on first use)")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    dvc = dvc_exe(args.dvc)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    env.update(DVC_NO_ANALYTICS="1", PYTHONPATH=str(HERE.parent / "src"))
    shipyard = [sys.executable, "-m", "shipyard"]
    adds, converts, from_cache = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-from-dvc-", dir=os.environ.get("BENCH_TMP")) as tmp:
        for rep in range(args.repeats):
            root = git_repo(Path(tmp) / f"p{rep}", env)
            timed([dvc, "init", "-q"], root, env)
            make_files(root / "data", args.files)
            adds.append(timed([dvc, "add", "-q", "data"], root, env))
            converts.append(timed([*shipyard, "init", "--from-dvc", "--json"], root, env))
            for name in ("shipyard.yaml", "shipyard.lock"):
                (root / name).unlink()
            shutil.rmtree(root / ".shipyard")
            shutil.rmtree(root / "data")
            from_cache.append(timed([*shipyard, "init", "--from-dvc", "--json"], root, env))
            shutil.rmtree(root)
            print(f"repeat {rep + 1}: dvc add {adds[-1]:.2f} s, init --from-dvc {converts[-1]:.2f} s "
                  f"({adds[-1] / converts[-1]:.2f}x), from DVC's cache alone {from_cache[-1]:.2f} s "
                  f"({adds[-1] / from_cache[-1]:.2f}x)", flush=True)
    add, conv, cache = (statistics.median(x) for x in (adds, converts, from_cache))
    dvc_version = subprocess.run([dvc, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"\n{args.files} files x 4 KiB, {platform.platform()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, DVC {dvc_version} ({DVC_SPEC}); medians of {args.repeats}")
    print("| step | time | speed vs `dvc add` (higher is faster) |\n|---|---|---|")
    print(f"| `dvc add data` (copy mode) | {add:.2f} s | 1.00x |")
    print(f"| `shipyard init --from-dvc` (workspace present) | {conv:.2f} s | {add / conv:.2f}x |")
    print(f"| `shipyard init --from-dvc` (DVC's cache only) | {cache:.2f} s | "
          f"{add / cache:.2f}x |")


if __name__ == "__main__":
    main()
