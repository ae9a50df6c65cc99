"""Stages as local subprocesses: output streamed line by line, stopped as a group on Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

from shipyard.core.pipelines.jobs import StageJob

KILL_AFTER_SECONDS = 10


def stage_environment(extra: dict[str, str]) -> dict[str, str]:
    """Our environment plus ``extra``, with this interpreter's bin folder first on PATH.

    So `python` in a stage's cmd is the Python Shipyard runs in (its venv), activated or not.
    """
    env = {**os.environ, **extra}
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    return env


class LocalExecutor:
    def __init__(self) -> None:
        self._running: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()

    def run(self, job: StageJob, on_line: Callable[[str], None]) -> int:
        proc = subprocess.Popen(
            job.cmd, shell=True, cwd=job.cwd, env=stage_environment(job.env), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        with self._lock:
            self._running.add(proc)
        try:
            for raw in proc.stdout or ():
                on_line(raw.decode(errors="replace").rstrip("\n"))
            return proc.wait()
        finally:
            with self._lock:
                self._running.discard(proc)
            if proc.poll() is None:
                self._stop(proc)
            if proc.stdout is not None:
                proc.stdout.close()

    def cancel(self) -> None:
        with self._lock:
            running = list(self._running)
        for proc in running:
            self._stop(proc)

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # the stage's whole process group
        try:
            proc.wait(timeout=KILL_AFTER_SECONDS)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
