"""Run a model image as a throwaway container (testcontainers) and ask it what production will ask.

The container serves on ``$PORT``: published on a free host port where the daemon has a bridge network,
on the host's network otherwise (a daemon started with ``--bridge=none``). Every wait has a deadline; a
container that exits before it is ready fails with the last lines of its own log as the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shipyard.core.environments.image import PORT_VARIABLE, READY_PATH
from shipyard.errors import BackendUnavailableError, MissingExtraError, NotFoundError

READY_TIMEOUT = 120.0
REQUEST_TIMEOUT = 60.0
LOG_LINES = 6
MAX_ANSWER_BYTES = 64 * 1024 * 1024


class ContainerFailed(Exception):
    """The container did not become ready or did not answer: ``reason`` says why, from its log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Answer:
    body: dict[str, Any]
    image_id: str
    seconds_to_ready: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(container: Any) -> str:
    try:
        text = container.get_wrapped_container().logs(tail=50).decode(errors="replace")
    except Exception:  # the log is only the reason's detail: a daemon that lost it still gets the failure said
        return "(no log)"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-LOG_LINES:])[-1500:] or "(its log is empty)"


@contextlib.contextmanager
def running(image: str, environ: Mapping[str, str],
            ready_timeout: float = READY_TIMEOUT) -> Iterator[tuple[str, str, float]]:
    """Start ``image``, wait for ``/v2/health/ready``; yield (base URL, image id, seconds to ready); remove it."""
    try:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer
    except ModuleNotFoundError as exc:
        raise MissingExtraError("verify --image", "images") from exc
    import docker  # type: ignore[import-untyped]
    from docker.errors import DockerException, ImageNotFound  # type: ignore[import-untyped]

    testcontainers_config.ryuk_disabled = True  # the container is removed here; no reaper image to pull
    try:
        client = docker.from_env(environment=dict(environ), timeout=30)
        image_id = str(client.images.get(image).id)
        bridged = bool(client.networks.list(names=["bridge"]))
    except ImageNotFound:
        raise NotFoundError(f"no image {image!r} in the Docker daemon: build it with `shipyard build`, "
                            "or pull it first") from None
    except DockerException as exc:
        where = environ.get("DOCKER_HOST") or "the default socket"
        raise BackendUnavailableError(f"cannot reach the Docker daemon at {where}: "
                                      f"{str(exc).splitlines()[0][:300]}") from exc
    name = f"shipyard-verify-{os.getpid()}-{os.urandom(4).hex()}"
    container = DockerContainer(image, docker_client_kw={"environment": dict(environ), "timeout": 30}).with_name(name)
    if bridged:
        container = container.with_env(PORT_VARIABLE, "8080").with_exposed_ports(8080)
    else:
        port = _free_port()
        container = container.with_env(PORT_VARIABLE, str(port)).with_kwargs(network_mode="host")
    start = time.monotonic()
    try:
        container.start()
    except DockerException as exc:  # created, then not started (its entrypoint is missing...): removed too
        with contextlib.suppress(DockerException):
            client.containers.get(name).remove(force=True, v=True)
        client.close()
        raise ContainerFailed(f"the container did not start: {str(exc).splitlines()[0][:500]}") from exc
    try:
        url = f"http://127.0.0.1:{container.get_exposed_port(8080) if bridged else port}"
        _wait_ready(container, url, start + ready_timeout, ready_timeout)
        yield url, image_id, time.monotonic() - start
    finally:
        with contextlib.suppress(Exception):  # removal is best effort: the verdict is already known
            container.get_wrapped_container().remove(force=True, v=True)
        client.close()


def _wait_ready(container: Any, url: str, deadline: float, timeout: float) -> None:
    while True:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status in ("exited", "dead"):
            code = wrapped.attrs.get("State", {}).get("ExitCode")
            raise ContainerFailed(f"the container exited (status {code}) before it was ready: {_tail(container)}")
        try:
            with urllib.request.urlopen(url + READY_PATH, timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise ContainerFailed(f"the container was not ready within {timeout:g} s: {_tail(container)}")
        time.sleep(0.25)


def infer(url: str, model: str, request: Mapping[str, Any], timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
    """POST an Open Inference Protocol request to ``/v2/models/MODEL/infer``; the JSON answer."""
    body = json.dumps(request).encode()
    req = urllib.request.Request(f"{url}/v2/models/{model}/infer", data=body, method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            raw = response.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        detail = " ".join(exc.read(2000).decode(errors="replace").split())  # one line, whatever it sent
        raise ContainerFailed(f"the server answered {exc.code}: {detail[:500]}") from exc
    except OSError as exc:
        raise ContainerFailed(f"the server did not answer within {timeout:g} s ({exc})") from exc
    if len(raw) > MAX_ANSWER_BYTES:
        raise ContainerFailed(f"the answer is larger than {MAX_ANSWER_BYTES // 1024 // 1024} MiB")
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ContainerFailed(f"the answer is not JSON ({exc})") from exc
    if not isinstance(answer, dict):
        raise ContainerFailed("the answer is not a JSON object")
    return answer


def run_in_image(image: str, model: str, request: Mapping[str, Any], environ: Mapping[str, str],
                 ready_timeout: float = READY_TIMEOUT) -> Answer:
    """Start the image, wait for it, send ``request``; raises ContainerFailed with the reason."""
    with running(image, environ, ready_timeout) as (url, image_id, ready):
        return Answer(infer(url, model, request), image_id, ready)
