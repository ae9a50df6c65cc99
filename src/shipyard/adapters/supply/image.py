"""The OS packages of a container image, read without running it: ``create`` a container (never started),
``cp`` its ``/var/lib/dpkg/status`` and ``/etc/os-release`` out as a tar stream read within a bound, remove it.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tarfile
import threading
from collections.abc import Mapping

from shipyard.adapters.images.engine import Engine, engine_for, last_words
from shipyard.adapters.supply.sbom import ImagePart
from shipyard.core.supply.packages import distro_of, dpkg_status, os_release
from shipyard.errors import BackendUnavailableError

MAX_STATUS_BYTES = 64 * 1024 * 1024
COPY_TIMEOUT = 60.0
DPKG_STATUS = "/var/lib/dpkg/status"
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")


def read_image(image: str, environ: Mapping[str, str]) -> ImagePart:
    """The reference, id, release and dpkg packages of ``image`` (which the engine has); an image without
    dpkg (Alpine, distroless) gives no packages, and the SBOM says so."""
    engine = engine_for(environ)
    image_id = engine.inspect(image).image_id
    name = f"shipyard-sbom-{os.getpid()}-{os.urandom(4).hex()}"
    engine.run(["create", "--name", name, "--pull", "never", "--network", "none", image, "true"],
               f"create a container of {image} (not started)")
    try:
        status = _copy_file(engine, name, DPKG_STATUS)
        release: dict[str, str] = {}
        for path in OS_RELEASE:
            text = _copy_file(engine, name, path)
            if text is not None:
                release = os_release(text)
                break
    finally:
        with contextlib.suppress(BackendUnavailableError):
            engine.run(["rm", "--force", name], f"remove the container {name}")
    packages = tuple(dpkg_status(status)) if status is not None else ()
    return ImagePart(image, image_id, distro_of(release), packages)


def _copy_file(engine: Engine, container: str, path: str) -> str | None:
    """The text of one regular file of ``container`` (None when it has none there), read within a bound."""
    try:
        proc = subprocess.Popen([engine.cli, "cp", "--follow-link", f"{container}:{path}", "-"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env=dict(engine.env))
    except OSError as exc:
        raise BackendUnavailableError(f"cannot run {engine.cli}: {exc.strerror or exc}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    out, err = bytearray(), bytearray()
    over = threading.Event()

    def pump() -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := proc.stdout.read1(65536):  # type: ignore[union-attr]
                out.extend(chunk)
                if len(out) > MAX_STATUS_BYTES + 1024 * 1024:  # the tar stream: the file and its headers
                    over.set()
                    proc.kill()
                    return

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=COPY_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise BackendUnavailableError(f"{engine.name} did not copy {path} out of {container} within "
                                      f"{COPY_TIMEOUT:g} s") from None
    finally:
        reader.join(5)
        err += proc.stderr.read(65536)
        proc.stdout.close()
        proc.stderr.close()
    if over.is_set():
        raise BackendUnavailableError(f"{path} in the image is larger than {MAX_STATUS_BYTES // 1024 // 1024} MiB")
    if proc.returncode != 0:
        words = last_words(err.decode(errors="replace"))
        if "no such file" in words.lower() or "could not find" in words.lower():
            return None
        raise BackendUnavailableError(f"{engine.name} could not copy {path} out of the image: {words}")
    try:
        with tarfile.open(fileobj=io.BytesIO(bytes(out)), mode="r:") as tar:
            for member in tar:
                if member.isfile() and member.size <= MAX_STATUS_BYTES:
                    f = tar.extractfile(member)
                    if f is not None:
                        return f.read(MAX_STATUS_BYTES).decode("utf-8", errors="replace")
    except tarfile.TarError as exc:
        raise BackendUnavailableError(f"{engine.name} copied {path} out as something that is not a tar stream "
                                      f"({exc})") from None
    return None
