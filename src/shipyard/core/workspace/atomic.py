"""Atomic file primitives: a reader sees the old file or the new one, never a mix.

``as_atomic`` is the one write-to-temp-then-rename in Shipyard. Its temp names are short and
never derived from the target's name, so a 255-byte file name cannot overflow them.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, cast

from shipyard.errors import IntegrityError

TEMP_PREFIX = ".sy-"
TEMP_SUFFIX = ".tmp"


def fsync_path(path: str | Path) -> None:
    """fsync a file, or a folder (which makes its entries, e.g. a rename, durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


fsync_dir = fsync_path


_names: tuple[int, Iterator[int]] | None = None  # this process's id, and its temp name numbers


def _fresh_names() -> None:
    global _names
    _names = (os.getpid() % 100000, itertools.count(int.from_bytes(os.urandom(5), "big")))


os.register_at_fork(after_in_child=_fresh_names)  # a child never reuses its parent's names


def temp_name(folder: str | Path) -> str:
    """A fresh, short temp file name in ``folder`` (at most 24 characters, whatever the target's name).

    The process id and a random number drawn once per process, then a count (``next`` on a C iterator: safe
    between threads): no system call per name, which counts when 20,000 small objects are written."""
    if _names is None:
        _fresh_names()
    pid, numbers = cast(tuple[int, Iterator[int]], _names)
    return f"{folder}/{TEMP_PREFIX}{pid:05d}-{next(numbers) % (1 << 40):010x}{TEMP_SUFFIX}"


@contextlib.contextmanager
def as_atomic(target: str | Path, *, durable: bool = True, temp_dir: str | Path | None = None,
              mode: int | None = None) -> Iterator[str]:
    """Yield a temp path to write; on success it is renamed over ``target``.

    The temp file lives beside ``target`` (or in ``temp_dir``, on the same filesystem). With
    ``durable`` it is fsync'd before the rename and the folder after it. ``mode`` is applied
    before the rename. On any exception, Ctrl-C included, the temp file is removed and
    ``target`` is left as it was.
    """
    target = str(target)
    tmp = temp_name(temp_dir if temp_dir is not None else os.path.dirname(target) or ".")
    try:
        yield tmp
        if durable:
            fsync_path(tmp)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
        if durable:
            fsync_dir(os.path.dirname(target) or ".")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


MAX_REF_BYTES = 1024 * 1024  # a ref is a small JSON value; anything larger is damaged or hostile


def ref_too_large(name: str, where: str) -> IntegrityError:
    return IntegrityError(f"ref {name} in {where} is larger than {MAX_REF_BYTES // 1024} KiB or not a regular file: "
                          "it is damaged or hostile; remove it (a stage-cache ref is re-created by the next run)")


@contextlib.contextmanager
def as_atomic_at(dir_fd: int, name: str, mode: int = 0o644) -> Iterator[BinaryIO]:
    """``as_atomic`` relative to an open folder: yield a new temp file in it; on success it gets ``mode``
    and is renamed over ``name`` in the same folder (not durable: no fsync, as checkouts write).

    Nothing is resolved by path, so a link swapped in for the folder or one above it after the folder
    was opened changes nothing: the file lands in the folder that was opened (``Confined.parent_fd``).
    """
    tmp = os.path.basename(temp_name(""))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            os.fchmod(out.fileno(), mode)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)


def read_ref(folder: Path, name: str) -> bytes | None:
    """A small named value kept as a file under ``folder`` (stores and folder remotes keep refs so).

    Read without following a link, and only a regular file of at most ``MAX_REF_BYTES``: a ref that
    is a link (say to ``/dev/zero``), a FIFO or a huge file is an IntegrityError, never read whole.
    """
    path = folder / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ref_too_large(name, str(folder)) from exc
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_REF_BYTES:
            raise ref_too_large(name, str(folder))
        data = f.read(MAX_REF_BYTES + 1)
    if len(data) > MAX_REF_BYTES:
        raise ref_too_large(name, str(folder))
    return data


def write_atomic(target: Path, data: bytes) -> None:
    """Replace ``target`` with ``data``: written beside it, fsync'd, renamed over it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with as_atomic(target) as tmp, open(tmp, "xb") as f:
        f.write(data)
