"""Atomic file primitives: a reader sees the old file or the new one, never a mix."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_path(path: str | Path) -> None:
    """fsync a file, or a folder (which makes its entries, e.g. a rename, durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_path


def read_ref(folder: Path, name: str) -> bytes | None:
    """A small named value kept as a file under ``folder`` (stores and folder remotes keep refs so)."""
    try:
        return (folder / name).read_bytes()
    except FileNotFoundError:
        return None


def write_atomic(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data``: written beside it, fsync'd, renamed over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
