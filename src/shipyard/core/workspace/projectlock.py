"""The project lock: commands that change ``shipyard.lock`` or the stage cache take turns on it.

It is an OS file lock (``flock``) on ``.shipyard/project.lock`` in the project. The kernel releases
it when the holding process ends, however it ends (``kill -9`` included), so a crashed command
never leaves the project locked. Hold it only around a read-modify-write (load the lock, change
it, save it): milliseconds, never across a stage's command or the hashing of data.

Not reentrant: taking it again in the thread that holds it is a programming error and raises.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from shipyard.errors import BackendUnavailableError

LOCK_FILE = ".shipyard/project.lock"
NOTICE_AFTER_SECONDS = 2.0  # a wait longer than this is worth a line on the terminal
WAIT_LIMIT_SECONDS = 300.0  # the lock is held for milliseconds: a wait this long means something is stuck

_held: set[tuple[int, str]] = set()  # (thread id, lock path) held in this process


def _notice(message: str) -> None:
    import logging  # only when a command waits: every data command takes this lock

    logging.getLogger("shipyard").warning(message)


@contextlib.contextmanager
def project_lock(root: Path, *, waiting: Callable[[str], None] = _notice,
                 notice_after: float = NOTICE_AFTER_SECONDS,
                 wait_limit: float = WAIT_LIMIT_SECONDS) -> Iterator[None]:
    """Hold the project lock of ``root`` for the ``with`` block, waiting for other commands if needed.

    ``waiting`` gets one line if the wait passes ``notice_after`` seconds (by default a logged
    warning, which the CLI shows on stderr). After ``wait_limit`` seconds it gives up with
    ``BackendUnavailableError`` naming the process that holds the lock.
    """
    path = root / LOCK_FILE
    key = (threading.get_ident(), str(path))
    if key in _held:
        raise RuntimeError(f"the project lock {path} is already held by this thread (it is not reentrant)")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:  # a project's first writing command
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _acquire(fd, path, waiting, notice_after, wait_limit)
        _held.add(key)
        try:
            # who holds it, named if another command waits long; fixed width, written in place: no truncation,
            # which would cost a block allocation (about 100 us) on every acquisition
            os.pwrite(fd, b"%-15d\n" % os.getpid(), 0)
            yield
        finally:
            _held.discard(key)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, waiting: Callable[[str], None], notice_after: float, wait_limit: float) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    start = time.monotonic()
    pause = 0.001
    noticed = False
    while True:
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        waited = time.monotonic() - start
        if not noticed and waited >= notice_after:
            noticed = True
            waiting(f"waiting for another shipyard command ({_holder(fd)}) to finish with shipyard.lock "
                    f"(project lock {path})")
        if waited >= wait_limit:
            raise BackendUnavailableError(
                f"another shipyard command ({_holder(fd)}) has held the project lock {path} for {waited:.0f} s; "
                "let it finish (or stop it) and try again")


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except (OSError, UnicodeDecodeError):
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"
