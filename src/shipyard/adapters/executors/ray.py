"""Stages as tasks on a Ray cluster (``executor: {kind: ray, address: host:port}``).

Each stage runs as one Ray task that executes its command in the project folder on a node that
sees it (the same machine, or a shared filesystem); the runner then stores the outputs, so they
reach the shared store and the cache as with the local executor. The task's output is relayed
line by line when it ends.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from collections.abc import Callable
from typing import Any

from shipyard.core.pipelines.jobs import StageJob
from shipyard.core.project.model import Executor as ExecutorSpec
from shipyard.errors import BackendUnavailableError, ConfigError, MissingExtraError


def _run_command(cmd: str, cwd: str, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(cmd, shell=True, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
    return done.returncode, done.stdout.decode(errors="replace")


class RayExecutor:
    def __init__(self, spec: ExecutorSpec) -> None:
        if not spec.address:
            raise ConfigError("executor kind ray needs an address (host:port of the Ray head) in shipyard.yaml")
        try:
            import ray
        except ModuleNotFoundError as exc:
            raise MissingExtraError("the Ray executor", "ray") from exc
        self._ray: Any = ray
        self._spec = spec
        self._refs: set[Any] = set()
        if not ray.is_initialized():
            _reachable(spec.address)
            try:
                ray.init(address=spec.address, log_to_driver=False, logging_level=logging.ERROR)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise BackendUnavailableError(f"cannot reach the Ray cluster at {spec.address}: {exc}") from exc
        self._task = ray.remote(num_cpus=spec.num_cpus)(_run_command)

    def run(self, job: StageJob, on_line: Callable[[str], None]) -> int:
        ref = self._task.remote(job.cmd, str(job.cwd), job.env)
        self._refs.add(ref)
        try:
            code, output = self._ray.get(ref)
        except self._ray.exceptions.TaskCancelledError:
            return -15
        except self._ray.exceptions.RayError as exc:
            on_line(f"ray: {exc}")
            return 1
        finally:
            self._refs.discard(ref)
        for line in output.splitlines():
            on_line(line)
        return int(code)

    def cancel(self) -> None:
        for ref in list(self._refs):
            self._ray.cancel(ref, force=True)


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast: ray.init would otherwise keep retrying an address nobody listens on."""
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise BackendUnavailableError(f"cannot reach the Ray cluster at {address}: {exc}; start it with "
                                      "`ray start --head` or fix executor.address in shipyard.yaml") from exc
