"""``as_atomic``: write beside the target, fsync, rename; nothing partial is ever visible."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def temp_file(tmp_dir: Path, prefix: str = "w-") -> Iterator[tuple[Path, int]]:
    """A fresh temp file (path, fd) in ``tmp_dir``, removed on any exit unless renamed away."""
    name = f"{prefix}{os.getpid()}-{os.urandom(6).hex()}"
    path = tmp_dir / name
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        yield path, fd
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def publish(tmp: Path, fd: int, target: Path) -> bool:
    """fsync ``tmp`` and rename it to ``target``; False if ``target`` already existed (kept as is)."""
    os.fsync(fd)
    os.close(fd)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        # link() fails if the target exists, so a concurrent writer of the same object never clobbers it
        os.link(tmp, target)
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links: rename, unless someone got there first
        if target.exists():
            return False
        os.replace(tmp, target)
    fsync_dir(target.parent)
    return True
