"""The container engine: Docker (``DOCKER_HOST`` or the default socket, its daemon answering) or podman.

Driven through its command line, each call with a timeout; its failures become one-line errors that
carry the engine's own last words.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from io import BufferedReader
from pathlib import Path

from shipyard.errors import BackendUnavailableError, InvalidInputError

DEFAULT_SOCKET = "/var/run/docker.sock"
PROBE_TIMEOUT = 10
BUILD_TIMEOUT = 1800
PUSH_TIMEOUT = 900
MAX_RECORD_CHARS = 16 * 1024 * 1024
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_DESTINATION = re.compile(r"[a-z0-9][a-z0-9._:/-]{0,250}", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Built:
    image_id: str  # sha256:... of the image's configuration
    tag: str
    size: int  # bytes, as the engine counts them
    labels: dict[str, str]


@dataclass(frozen=True, slots=True)
class Engine:
    """One container engine's command line (``docker`` or ``podman``) and the environment it runs with."""

    name: str
    cli: str
    env: Mapping[str, str]

    def run(self, args: Sequence[str], what: str, timeout: float = PROBE_TIMEOUT) -> str:
        try:
            done = subprocess.run([self.cli, *args], capture_output=True, text=True, timeout=timeout,
                                  env=dict(self.env), check=False)
        except subprocess.TimeoutExpired as exc:
            raise BackendUnavailableError(f"{self.name} did not {what} within {timeout:g} s") from exc
        except OSError as exc:
            raise BackendUnavailableError(f"cannot run {self.cli}: {exc.strerror or exc}") from exc
        if done.returncode != 0:
            raise BackendUnavailableError(f"{self.name} could not {what}: {last_words(done.stderr or done.stdout)}")
        return done.stdout

    def run_bounded(self, args: Sequence[str], what: str, timeout: float, limit: int) -> str:
        """``run``, reading at most ``limit`` bytes of what the command prints (an image's own program prints
        there): more stops it, as the timeout does."""
        try:
            proc = subprocess.Popen([self.cli, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, env=dict(self.env))
        except OSError as exc:
            raise BackendUnavailableError(f"cannot run {self.cli}: {exc.strerror or exc}") from exc
        out, err, over = bytearray(), bytearray(), threading.Event()

        def pump(stream: BufferedReader, buf: bytearray, cap: int, stop: bool) -> None:
            with contextlib.suppress(OSError, ValueError):
                while chunk := stream.read1(65536):
                    buf += chunk
                    if len(buf) > cap and stop:
                        over.set()
                        proc.kill()
                        return
                    del buf[:-cap]  # the last words are what a failure shows

        assert proc.stdout is not None and proc.stderr is not None
        pumps = [threading.Thread(target=pump, args=(proc.stdout, out, limit, True), daemon=True),
                 threading.Thread(target=pump, args=(proc.stderr, err, 65536, False), daemon=True)]
        for t in pumps:
            t.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise BackendUnavailableError(f"{self.name} did not {what} within {timeout:g} s") from None
        finally:
            for t in pumps:
                t.join(5)
            proc.stdout.close()
            proc.stderr.close()
        if over.is_set():
            raise BackendUnavailableError(f"{self.name} printed more than {limit // 1024 // 1024} MiB when asked "
                                          f"to {what}")
        if code != 0:
            raise BackendUnavailableError(f"{self.name} could not {what}: {last_words(err.decode(errors='replace'))}")
        return out.decode(errors="replace")

    def build(self, context: Path, tag: str, deps_image: str) -> tuple[Built, bool]:
        """Build ``context`` without network (it carries everything), tagged ``tag``: first its ``deps/``
        as ``deps_image`` unless the engine has it already. Returns the image and whether deps/ was built."""
        built_deps = not self.has(deps_image)
        if built_deps:
            self.run(["build", "--network", "none", "-t", deps_image, str(context / "deps")],
                     f"build {context / 'deps'}", BUILD_TIMEOUT)
        self.run(["build", "--network", "none", "-t", tag, str(context)], f"build {context}", BUILD_TIMEOUT)
        return self.inspect(tag), built_deps

    def environment(self, image: str, timeout: float = PROBE_TIMEOUT * 12) -> dict[str, object]:
        """The environment record captured inside ``image`` by Shipyard's own probe (entrypoint overridden,
        no network): what `env check --target IMAGE` compares with the model's."""
        name = f"shipyard-probe-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            out = self.run_bounded(["run", "--rm", "--name", name, "--pull", "never", "--network", "none",
                                    "--entrypoint", "python3", image, "-m", "shipyard.adapters.environments.probe"],
                                   f"capture the environment inside {image} (an image `shipyard build` made "
                                   "carries Shipyard's probe)", timeout, MAX_RECORD_CHARS)
        except BackendUnavailableError:
            # killing the client on a timeout leaves its container running: remove it (gone already is fine)
            with contextlib.suppress(BackendUnavailableError):
                self.run(["rm", "--force", name], f"remove the container {name}")
            raise
        if len(out) > MAX_RECORD_CHARS:
            raise BackendUnavailableError(f"the environment record {image} printed is larger than "
                                          f"{MAX_RECORD_CHARS // 1024 // 1024} MiB")
        try:
            record = json.loads(out)
        except (ValueError, RecursionError) as exc:
            raise BackendUnavailableError(f"{image} printed no environment record ({exc})") from None
        if not isinstance(record, dict):
            raise BackendUnavailableError(f"{image} printed no environment record (not a JSON object)")
        return record

    def has(self, image: str) -> bool:
        try:
            self.run(["image", "inspect", "--format", "{{.Id}}", image], f"find {image}")
        except BackendUnavailableError:
            return False
        return True

    def inspect(self, image: str) -> Built:
        text = self.run(["image", "inspect", image], f"find the image {image}")
        try:
            body = json.loads(text)[0]
            labels = (body.get("Config") or {}).get("Labels") or {}
            return Built(str(body["Id"]), image, int(body.get("Size") or 0), dict(labels))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendUnavailableError(f"{self.name} described {image} in an unexpected form ({exc})") from exc

    def push(self, image: str, destination: str, auth: tuple[str, str] | None = None) -> str:
        """Tag ``image`` as ``destination`` (REGISTRY/REPO[:TAG]) and push it; the pushed manifest's digest.
        ``auth``: (user, password) for the registry (a secret resolved at use), given to this push alone."""
        if not _DESTINATION.fullmatch(destination) or "/" not in destination:
            raise InvalidInputError(f"--push {destination[:80]!r}: give REGISTRY/REPOSITORY[:TAG], "
                                    "like registry.example.com/team/iris:3")
        self.run(["tag", image, destination], f"tag {image} as {destination}")
        with push_auth(destination, auth) as extra:
            out = replace(self, env={**self.env, **extra}).run(["push", destination], f"push {destination}",
                                                                PUSH_TIMEOUT)
        found = re.findall(r"digest: (sha256:[0-9a-f]{64})", out)
        if found:
            return str(found[-1])
        repo = destination.rsplit(":", 1)[0] if ":" in destination.rsplit("/", 1)[-1] else destination
        for ref in json.loads(self.run(["image", "inspect", "--format", "{{json .RepoDigests}}", destination],
                                       f"read the digest of {destination}")) or []:
            if str(ref).startswith(repo + "@") and _DIGEST.search(str(ref)):
                return str(ref).split("@", 1)[1]
        raise BackendUnavailableError(f"{self.name} pushed {destination} but did not say its digest")


DOCKER_HUB = "https://index.docker.io/v1/"


def registry_host(destination: str) -> str:
    """The registry a push goes to, as docker's config.json names it (Docker Hub when the first part is not
    a host)."""
    first = destination.split("/", 1)[0]
    return first if "." in first or ":" in first or first == "localhost" else DOCKER_HUB


@contextlib.contextmanager
def push_auth(destination: str, auth: tuple[str, str] | None) -> Iterator[dict[str, str]]:
    """The environment that gives one push its registry credentials: a private folder (0700) holding a
    config.json (0600) for docker (``DOCKER_CONFIG``) and podman (``REGISTRY_AUTH_FILE``), removed when the push
    ends, whatever happens. The engines read credentials only from such a file (or their own login, which
    would write it into the user's config for good)."""
    if auth is None:
        yield {}
        return
    import base64
    import tempfile

    user, password = auth
    folder = tempfile.mkdtemp(prefix="shipyard-push-")
    try:
        path = os.path.join(folder, "config.json")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"auths": {registry_host(destination): {"auth": token}}}, f)
        yield {"DOCKER_CONFIG": folder, "REGISTRY_AUTH_FILE": path}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def last_words(text: str, lines: int = 3) -> str:
    """The last lines an engine printed, on one line (its reason for failing)."""
    kept = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    return " | ".join(kept[-lines:])[:600] or "no message"


def detect(environ: Mapping[str, str]) -> Engine | None:
    """The engine to use here: Docker when ``DOCKER_HOST`` or the default socket answers, else podman;
    None when neither is usable (then the context is written and the command to build it printed)."""
    docker = shutil.which("docker", path=environ.get("PATH"))
    host = environ.get("DOCKER_HOST")
    if docker and (host or os.path.exists(DEFAULT_SOCKET)):
        engine = Engine("docker", docker, {**environ, "DOCKER_BUILDKIT": "0"})
        if _answers(engine):
            return engine
    podman = shutil.which("podman", path=environ.get("PATH"))
    if podman:
        engine = Engine("podman", podman, dict(environ))
        if _answers(engine):
            return engine
    return None


def _answers(engine: Engine) -> bool:
    try:
        engine.run(["version", "--format", "{{.Server.Version}}" if engine.name == "docker" else "{{.Version}}"],
                   "answer")
    except BackendUnavailableError:
        return False
    return True


def engine_for(environ: Mapping[str, str]) -> Engine:
    """The engine, or a one-line error saying how to get one (for commands that cannot do without)."""
    found = detect(environ)
    if found is None:
        where = environ.get("DOCKER_HOST") or DEFAULT_SOCKET
        raise BackendUnavailableError(f"no container engine answers (Docker at {where}, or podman): start one, "
                                      "or set DOCKER_HOST to its socket")
    return found
