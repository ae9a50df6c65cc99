"""Real container parts for tests/test_images.py: a Docker daemon on a temp socket, a debootstrapped base
image with python3 (its tarball cached between runs), and a local OCI registry on 127.0.0.1.

Each part fails with its reason when it cannot start: the container tests never skip silently.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import stop

DEBOOTSTRAP_ARGS = ("--variant=minbase", "--include=python3", "bookworm")
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_IMAGE = "local/debian-python:bookworm"
CACHE = Path(os.environ.get("SHIPYARD_TEST_CACHE", Path.home() / ".cache" / "shipyard-tests"))
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_tarball() -> Path:
    """The debootstrapped root filesystem as a tarball, made once (~25 s to 2 min) and cached by its arguments."""
    key = hashlib.sha256(" ".join((*DEBOOTSTRAP_ARGS, DEBIAN_MIRROR)).encode()).hexdigest()[:16]
    tarball = CACHE / f"debootstrap-{key}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        pytest.fail("debootstrap is not installed (apt-get install debootstrap): the container tests need it "
                    "to make their base image")
    CACHE.mkdir(parents=True, exist_ok=True)
    root = CACHE / f"rootfs-{key}.partial"
    shutil.rmtree(root, ignore_errors=True)
    done = subprocess.run(["debootstrap", *DEBOOTSTRAP_ARGS, str(root), DEBIAN_MIRROR], capture_output=True,
                          text=True, timeout=600, check=False)
    if done.returncode != 0:
        pytest.fail(f"debootstrap failed: {(done.stderr or done.stdout).strip().splitlines()[-3:]}")
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for item in (root / junk).glob("*"):
            if item.is_file():
                item.unlink()
    partial = tarball.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        tar.add(root, arcname=".")
    os.replace(partial, tarball)
    shutil.rmtree(root, ignore_errors=True)
    return tarball


@dataclass
class Daemon:
    host: str  # unix:///...docker.sock
    env: dict[str, str]
    root: Path

    def docker(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["docker", *args], capture_output=True, text=True, env=self.env, timeout=timeout,
                              check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr.strip()[-800:]}")
        return done


def start_dockerd(tmp: Path) -> Iterator[Daemon]:
    """dockerd per REAL-PARTS.md (no bridge, no iptables) on a socket in ``tmp``; stopped by its PID."""
    dockerd = shutil.which("dockerd")
    if dockerd is None or shutil.which("docker") is None:
        pytest.fail("the Docker daemon is not installed (apt-get install docker.io): the container tests need it")
    tmp.mkdir(parents=True, exist_ok=True)
    sock = tmp / "docker.sock"
    log = open(tmp / "dockerd.log", "wb")  # noqa: SIM115 - open for the daemon's lifetime
    proc = subprocess.Popen([dockerd, "--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
                             "--storage-driver", "overlay2", "--data-root", str(tmp / "dd"), "--exec-root",
                             str(tmp / "de"), "--pidfile", str(tmp / "dockerd.pid"), "-H", f"unix://{sock}"],
                            stdout=log, stderr=subprocess.STDOUT)
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "TESTCONTAINERS_RYUK_DISABLED": "true",
           "DOCKER_BUILDKIT": "0"}
    env.pop("DOCKER_CONFIG", None)
    daemon = Daemon(f"unix://{sock}", env, tmp)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dockerd exited ({proc.returncode}): {_tail(tmp / 'dockerd.log')}")
            if sock.exists() and daemon.docker("version", check=False, timeout=10).returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"dockerd did not answer within {START_TIMEOUT:g} s: {_tail(tmp / 'dockerd.log')}")
            time.sleep(0.2)
        yield daemon
    finally:
        stop(proc, 20)
        log.close()
        for mounted in _mounts_under(tmp):  # de/netns/default stays mounted after dockerd stops: tmp would stay
            subprocess.run(["umount", "-l", mounted], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


def _mounts_under(folder: Path) -> list[str]:
    """The mount points below ``folder`` (from /proc/mounts), deepest first."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    prefix = str(folder.resolve()) + "/"
    points = [line.split()[1] for line in lines if len(line.split()) > 1 and line.split()[1].startswith(prefix)]
    return sorted(points, key=len, reverse=True)


def import_base(daemon: Daemon) -> str:
    tarball = base_tarball()
    with open(tarball, "rb") as f:
        done = subprocess.run(["docker", "import", "-", BASE_IMAGE], stdin=f, capture_output=True, text=True,
                              env=daemon.env, timeout=300, check=False)
    if done.returncode != 0:
        pytest.fail(f"docker import of the base image failed: {done.stderr.strip()[-500:]}")
    return BASE_IMAGE


def start_registry(tmp: Path) -> Iterator[str]:
    """Debian's docker-registry on a free 127.0.0.1 port; yields ``127.0.0.1:PORT``."""
    binary = shutil.which("docker-registry")
    if binary is None:
        pytest.fail("docker-registry is not installed (apt-get install docker-registry): the push test needs it")
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {tmp}/data\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    log = open(tmp / "registry.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"docker-registry exited ({proc.returncode}): {_tail(tmp / 'registry.log')}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"docker-registry did not answer within {START_TIMEOUT:g} s")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc, 10)
        log.close()


def _tail(path: Path) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-4:])[-800:]
    except OSError:
        return "(no log)"


# Session fixtures, one set per test session (per xdist worker; the container tests are one xdist group):
# tests/conftest.py loads this module as a plugin, so every test module shares one daemon and one base image.

@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    yield from start_dockerd(tmp_path_factory.mktemp("dockerd", numbered=True))


@pytest.fixture(scope="session")
def base_image(daemon: Daemon) -> str:
    return import_base(daemon)


@pytest.fixture(scope="session")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_registry(tmp_path_factory.mktemp("registry"))
