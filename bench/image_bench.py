"""`shipyard build` against the hand-written Dockerfile teams start with, on the same base, in one run.

- Image size: Shipyard's image (the model's lock + Shipyard's serving requirements) against a Dockerfile
  that installs the whole training environment (`pip freeze` of this interpreter: torch and all). Both get
  the same hermetic treatment: installed by uv for the image's Python into a folder the Dockerfile copies
  (the engine here has no network), with bytecode compiled as pip compiles it. Target: <= 0.8x.
- Rebuild: `shipyard build` of a new version of the same model, end to end (a CLI process), on the
  cached layers. Target: < 10 s.

Needs root, dockerd and debootstrap (as tests/test_images.py): uses DOCKER_HOST when it is set, else
starts its own daemon. Run: `.venv/bin/python bench/image_bench.py`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.images_fixtures import BASE_IMAGE, Daemon, import_base, start_dockerd  # noqa: E402

TRAIN = """
import shipyard
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
x, y = load_iris(return_X_y=True)
print(shipyard.log_model(LogisticRegression(max_iter={iters}).fit(x, y), "iris", examples=x[:5]).ref)
"""


@contextmanager
def daemon(tmp: Path) -> Iterator[Daemon]:
    if os.environ.get("DOCKER_HOST"):
        env = {**os.environ, "DOCKER_BUILDKIT": "0", "TESTCONTAINERS_RYUK_DISABLED": "true"}
        yield Daemon(os.environ["DOCKER_HOST"], env, tmp)
        return
    gen = start_dockerd(tmp / "dockerd")
    try:
        yield next(gen)
    finally:
        gen.close()


def size(d: Daemon, tag: str) -> int:
    return int(json.loads(d.docker("image", "inspect", tag).stdout)[0]["Size"])


def mib(n: float) -> str:
    return f"{n / 1024 / 1024:.0f} MiB"


def freeze_image(d: Daemon, work: Path, tag: str) -> tuple[int, int]:
    """The hand-written baseline: the training environment's `pip freeze`, Shipyard, the model's files."""
    import uv

    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    reqs = [ln for ln in frozen if ln.strip() and not ln.startswith(("-e ", "#")) and "shipyard" not in ln.lower()]
    ctx = work / "freeze-ctx"
    (ctx / "app").mkdir(parents=True)
    (ctx / "requirements.txt").write_text("\n".join(reqs) + "\n")
    links = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.find-links"], capture_output=True,
                           text=True, check=False).stdout.split()
    cmd = [str(uv.find_uv_bin()), "pip", "install", "--quiet", "--target", str(ctx / "site"), "--python-version",
           f"{sys.version_info[0]}.{sys.version_info[1]}", "--python-platform", "x86_64-manylinux_2_28",
           "--compile-bytecode", "-r", str(ctx / "requirements.txt"), *[f"--find-links={p}" for p in links]]
    subprocess.run(cmd, check=True)
    shutil.copytree(ROOT / "src" / "shipyard", ctx / "app" / "shipyard",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (ctx / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nCOPY site/ /opt/site/\nCOPY app/ /opt/app/\nCOPY model/ /srv/model/\n"
        "ENV PYTHONPATH=/opt/site:/opt/app SHIPYARD_HOME=/srv/model/.shipyard\nWORKDIR /srv/model\n"
        'CMD ["python3", "-m", "shipyard", "serve", "iris@1", "--host", "0.0.0.0"]\n')
    shutil.copytree(work / "proj" / "ctx-1" / "model", ctx / "model")  # the same one-version registry
    d.docker("build", "--network", "none", "-t", tag, str(ctx), timeout=1800)
    return size(d, tag), len(reqs)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="image-bench-") as tmp_name, daemon(Path(tmp_name)) as d:
        tmp = Path(tmp_name)
        import_base(d)
        proj = tmp / "proj"
        (proj / ".shipyard").mkdir(parents=True)
        env = {**d.env, "SHIPYARD_HOME": str(proj / ".shipyard"), "SHIPYARD_ACTOR": "bench@local",
               "PYTHONPATH": str(ROOT / "src")}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(list(args), cwd=proj, env=env, capture_output=True, text=True, check=True)

        run(sys.executable, "-c", TRAIN.format(iters=300))
        t = time.perf_counter()
        first = json.loads(run(sys.executable, "-m", "shipyard", "build", "iris@1", "--base", BASE_IMAGE,
                               "--output", str(proj / "ctx-1"), "--json").stdout)
        first_s = time.perf_counter() - t
        ours = size(d, first["tag"])
        base = size(d, BASE_IMAGE)
        theirs, count = freeze_image(d, tmp, "bench/freeze:1")

        run(sys.executable, "-c", TRAIN.format(iters=301))
        t = time.perf_counter()
        second = json.loads(run(sys.executable, "-m", "shipyard", "build", "iris@2", "--base", BASE_IMAGE,
                                "--json").stdout)
        rebuild_s = time.perf_counter() - t

    ratio = ours / theirs
    print(f"# shipyard build vs a `pip freeze` Dockerfile ({platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, base {BASE_IMAGE} {mib(base)})")
    print("| work | Shipyard | hand-written | ratio | target |")
    print("|---|---|---|---|---|")
    print(f"| image size (base included) | {mib(ours)} | {mib(theirs)} ({count} frozen packages) | "
          f"{ratio:.2f}x | <= 0.8x: {'met' if ratio <= 0.8 else 'MISSED'} |")
    print(f"| added to the base | {mib(ours - base)} | {mib(theirs - base)} | {(ours - base) / (theirs - base):.2f}x "
          "| |")
    print(f"| first build (dependencies {'cached' if first['dependencies_cached'] else 'installed'}, deps image "
          f"{'built' if first['deps_built'] else 'reused'}) | {first_s:.1f} s | | | |")
    print(f"| rebuild after registering iris@2 (end to end, CLI) | {rebuild_s:.1f} s "
          f"(engine {second['seconds'].get('build', 0):.1f} s, context {second['seconds']['context']:.1f} s) | | | "
          f"< 10 s: {'met' if rebuild_s < 10 else 'MISSED'} |")


if __name__ == "__main__":
    main()
