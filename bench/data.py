"""Data versioning and pipelines: Shipyard vs DVC on the same work, in one run, with ratios.

    python bench/data.py [--dvc PATH] [--big-mib 1024] [--files 20000] [--stages 50] [--repeat N]
                         [--no-links]

DVC is installed into bench/.venvs/dvc on first use. Each tool works in its own fresh git
repository under one scratch folder; every step is a real CLI invocation, timed from outside:
wall-clock time, and CPU time (user + system of the command and its children, which the load of
other work on the machine disturbs less). ``--repeat N`` runs the whole comparison N times, the
tools alternating (Shipyard first in odd rounds, DVC first in even ones), and reports medians.
``--big-mib 0`` skips the big file, ``--stages 0`` the pipeline, ``--no-links`` the hard-link adds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from venvs import tool_python

from shipyard.adapters.stores.local import can_override_modes

HERE = Path(__file__).resolve().parent
DVC_SPEC = "dvc==3.67.1"


def dvc_exe(explicit: str | None) -> str:
    if explicit:
        return explicit
    return str(Path(tool_python("dvc", [DVC_SPEC])).parent / "dvc")


CPU: dict[str, float] = {}  # CPU seconds of the last `sh` (user + system, children included)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    # Flush what earlier steps left dirty in the page cache, so no tool pays for another's writes
    # (Shipyard's store syncs before objects become visible, which would otherwise flush them too).
    os.sync()
    cpu = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    CPU["last"] = _children_cpu() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return took


def step(r: dict[str, float], key: str, cmd: list[str], cwd: Path, env: dict[str, str], repeats: int = 1) -> None:
    """Time ``cmd`` (the median of ``repeats`` runs) into ``r[key]``, and its CPU time into ``r[key + '_cpu']``."""
    walls, cpus = [], []
    for _ in range(repeats):
        walls.append(sh(cmd, cwd, env))
        cpus.append(CPU["last"])
    r[key] = statistics.median(walls)
    r[key + "_cpu"] = statistics.median(cpus)


def git_repo(path: Path, env: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "b@example.com"],
                ["git", "config", "user.name", "bench"]):
        sh(cmd, path, env)
    return path


def make_big(path: Path, mib: int) -> None:
    chunk = os.urandom(1024 * 1024)
    with open(path, "wb") as f:
        for i in range(mib):
            f.write(chunk[i % 7:] + chunk[:i % 7])  # distinct-ish content, fast to produce


def make_files(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    for i in range(n):
        sub = folder / f"d{i % 100:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"f{i:05d}.bin").write_bytes(i.to_bytes(4, "little") * 1024)


def chain(stages: int, tool: str) -> str:
    lines = ["stages:"] if tool == "dvc" else ["version: 1", "stages:"]
    for i in range(stages):
        lines += [f"  s{i}:",
                  f"    cmd: python -c \"import shutil; shutil.copy('f{i}.txt', 'f{i + 1}.txt')\"",
                  f"    deps: [f{i}.txt]",
                  f"    outs: [f{i + 1}.txt]"]
    return "\n".join(lines) + "\n"


def run_tool(tool: str, exe: str, work: Path, src: Path, args: argparse.Namespace, env: dict[str, str]) -> dict:
    r: dict[str, float] = {}
    repo = git_repo(work / tool, env)
    init = [exe, "init", "-q"] if tool == "dvc" else [exe, "init"]
    sh(init, repo, env)
    if tool == "dvc":
        sh([exe, "config", "core.autostage", "false"], repo, env)
        sh([exe, "config", "core.analytics", "false"], repo, env)

    add = [exe, "add", "-q"] if tool == "dvc" else [exe, "data", "add"]
    shutil.copytree(src / "files", repo / "files")
    step(r, "add_files_s", [*add, "files"], repo, env)
    status = [exe, "status"] if tool == "dvc" else [exe, "data", "status"]
    step(r, "status_clean_s", status, repo, env, 5)
    (repo / "files" / "d07" / "f00007.bin").write_bytes(b"changed")
    step(r, "status_one_changed_s", status, repo, env, 5)
    (repo / "files" / "d07" / "f00007.bin").write_bytes((7).to_bytes(4, "little") * 1024)

    remote = work / f"{tool}-remote"  # pushed while the folder is all the repository tracks
    remote.mkdir()  # Shipyard never makes a folder remote from a (possibly mistyped) path
    if tool == "dvc":
        sh([exe, "remote", "add", "-d", "local", str(remote)], repo, env)
    else:
        (repo / "shipyard.yaml").write_text(f"version: 1\nremotes:\n  local:\n    url: {remote}\n"
                                            "default_remote: local\n")
    step(r, "push_s", [exe, "push", "-q"] if tool == "dvc" else [exe, "data", "push"], repo, env)

    # pull into a fresh clone of the project's files (no store, no data): fetch and check out
    clone = git_repo(work / f"{tool}-clone", env)
    sh(init, clone, env)
    if tool == "dvc":
        sh([exe, "config", "core.analytics", "false"], clone, env)
        sh([exe, "remote", "add", "-d", "local", str(remote)], clone, env)
        shutil.copyfile(repo / "files.dvc", clone / "files.dvc")
    else:
        for name in ("shipyard.yaml", "shipyard.lock"):
            shutil.copyfile(repo / name, clone / name)
    step(r, "pull_s", [exe, "pull", "-q"] if tool == "dvc" else [exe, "data", "pull"], clone, env)

    if args.big_mib:
        shutil.copyfile(src / "big.bin", repo / "big.bin")
        step(r, "add_big_s", [*add, "big.bin"], repo, env)

    if args.links:  # the same adds when the user chooses hard links (no copy into the store)
        linked = git_repo(work / f"{tool}-links", env)
        sh(init, linked, env)
        if tool == "dvc":
            sh([exe, "config", "cache.type", "hardlink"], linked, env)
        link_add = add if tool == "dvc" else [*add, "--hardlink"]
        if args.big_mib:
            shutil.copyfile(src / "big.bin", linked / "big.bin")
            step(r, "add_big_link_s", [*link_add, "big.bin"], linked, env)
        shutil.copytree(src / "files", linked / "files")
        step(r, "add_files_link_s", [*link_add, "files"], linked, env)

    if args.stages:
        pipe = git_repo(work / f"{tool}-pipe", env)
        sh(init, pipe, env)
        (pipe / "f0.txt").write_text("start\n")
        (pipe / ("dvc.yaml" if tool == "dvc" else "shipyard.yaml")).write_text(chain(args.stages, tool))
        run = [exe, "repro", "-q"] if tool == "dvc" else [exe, "run"]
        step(r, "pipeline_first_s", run, pipe, env)
        step(r, "pipeline_noop_s", run, pipe, env, 5)
    return r


def without_dac_override() -> None:
    """Re-run this script without CAP_DAC_OVERRIDE: Shipyard refuses --hardlink to a process that could
    write through the read-only links (root keeps that power unless it is dropped)."""
    print("running without CAP_DAC_OVERRIDE (root may not add with --hardlink)", flush=True)
    os.execvp("setpriv", ["setpriv", "--bounding-set", "-dac_override", "--", sys.executable, *sys.argv])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dvc", help="path of an existing dvc executable")
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--stages", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=1, help="rounds, the tools alternating; medians are reported")
    ap.add_argument("--no-links", dest="links", action="store_false", help="skip the hard-link adds")
    args = ap.parse_args()
    dvc = dvc_exe(args.dvc)
    if can_override_modes() and args.links:
        without_dac_override()
    shipyard = str(Path(sys.executable).parent / "shipyard")
    # as a user runs them: no PYTHONDONTWRITEBYTECODE (DVC's modules were compiled when pip installed it; without
    # this, Shipyard's source tree would be compiled again at every command: ~40 ms of each start-up here)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHIPYARD_", "DVC_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DVC_NO_ANALYTICS"] = "1"
    rounds: dict[str, list[dict[str, float]]] = {"shipyard": [], "dvc": []}
    tools = [("shipyard", shipyard), ("dvc", dvc)]
    with tempfile.TemporaryDirectory(prefix="bench-data-", dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        src = work / "src"
        src.mkdir()
        print(f"making a {args.big_mib} MiB file and {args.files} files of 4 KiB...", flush=True)
        if args.big_mib:
            make_big(src / "big.bin", args.big_mib)
        make_files(src / "files", args.files)
        for n in range(args.repeat):
            for tool, exe in tools if n % 2 == 0 else tools[::-1]:
                print(f"round {n + 1}/{args.repeat}: running {tool}...", flush=True)
                where = work / f"round{n}"
                where.mkdir(exist_ok=True)
                rounds[tool].append(run_tool(tool, exe, where, src, args, env))
                for name in ("", "-remote", "-clone", "-links", "-pipe"):  # keep the scratch folder's size bounded
                    shutil.rmtree(where / f"{tool}{name}", ignore_errors=True)

    results = {tool: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for tool, runs in rounds.items()}
    s, d = results["shipyard"], results["dvc"]
    mib = args.big_mib
    version = subprocess.run([dvc, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{{'date': '{time.strftime('%Y-%m-%d %H:%M')}', 'machine': '{platform.machine()}, {os.cpu_count()} "
          f"cores', 'python': '{platform.python_version()}', 'dvc': '{version}', 'rounds': {args.repeat}, "
          f"'load average at the end': '{load}'}}\n")
    rows = [
        ("add_big_s", f"add one {mib} MiB file", 4),
        ("add_big_link_s", f"add one {mib} MiB file, hard links", 4),
        ("add_files_s", f"add {args.files} files of 4 KiB", 2),
        ("add_files_link_s", f"add {args.files} files of 4 KiB, hard links", 3),
        ("status_clean_s", "status, nothing changed", 5),
        ("status_one_changed_s", "status, one file changed", 4),
        ("push_s", f"push the {args.files} files to a local-folder remote", 2),
        ("pull_s", "pull them into a fresh clone (fetch + check out)", None),
        ("pipeline_first_s", f"first run of a {args.stages}-stage chain", None),
        ("pipeline_noop_s", f"no-op run of the {args.stages}-stage chain", 5),
    ]
    print("| work | Shipyard | DVC | DVC / Shipyard | CPU: Shipyard | CPU: DVC | CPU ratio | target |")
    print("|---|---|---|---|---|---|---|---|")
    for key, label, target in rows:
        if key not in s:
            continue
        ratio = d[key] / s[key]
        cpu = d[key + "_cpu"] / s[key + "_cpu"] if s[key + "_cpu"] else float("nan")
        verdict = "" if target is None else f">= {target}x: {'met' if ratio >= target else 'MISSED'}"
        print(f"| {label} | {s[key]:.3g} s | {d[key]:.3g} s | {ratio:.1f}x | {s[key + '_cpu']:.3g} s | "
              f"{d[key + '_cpu']:.3g} s | {cpu:.1f}x | {verdict} |")
    if mib:
        print(f"\nadding the big file: Shipyard {mib / s['add_big_s']:.0f} MiB/s, DVC {mib / d['add_big_s']:.0f} MiB/s")
    out = HERE / ".work"
    out.mkdir(exist_ok=True)
    (out / "data.json").write_text(json.dumps({"medians": results, "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
