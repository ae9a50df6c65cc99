"""Streams of an object's chunks: received ahead by another thread, or read as a file."""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from collections.abc import Iterator
from typing import BinaryIO

from shipyard.core.artifacts.digest import Digest
from shipyard.ports import Remote

AHEAD = 2  # chunks a download receives ahead of the one being hashed and written


class _Chunks(io.RawIOBase):
    """A read-only file over a stream of chunks (an upstream object read without a local copy)."""

    def __init__(self, chunks: Iterator[bytes], first: bytes) -> None:
        self._chunks = chunks
        self._left = memoryview(first)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._left:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._left = memoryview(chunk)
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        super().close()


def upstream_reader(remote: Remote, digest: Digest) -> BinaryIO:
    """``digest``'s bytes as upstream holds them (NotFoundError now, before any read, if it is absent)."""
    chunks = iter(remote.read(digest))
    first = next(chunks, b"")
    return io.BufferedReader(_Chunks(chunks, first), buffer_size=1024 * 1024)


def prefetched(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """``chunks``, received by another thread while this one hashes and writes the previous ones: the network
    and the hashing overlap (each releases the GIL), so a download costs about the slower of the two."""
    ready: queue.Queue[tuple[bytes | None, BaseException | None]] = queue.Queue(AHEAD)
    stop = threading.Event()

    def pump() -> None:
        item: tuple[bytes | None, BaseException | None] = (None, None)
        try:
            for chunk in chunks:
                if not _offer(ready, (chunk, None), stop):
                    return
        except BaseException as exc:  # handed to the reader, raised there
            item = (None, exc)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None and stop.is_set():
                close()
        _offer(ready, item, stop)

    threading.Thread(target=pump, name="shipyard-download", daemon=True).start()
    try:
        while True:
            chunk, error = ready.get()
            if error is not None:
                raise error
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()


def _offer(ready: queue.Queue[tuple[bytes | None, BaseException | None]],
           item: tuple[bytes | None, BaseException | None], stop: threading.Event) -> bool:
    """Put ``item`` once there is room; False if the reader stopped meanwhile."""
    while not stop.is_set():
        with contextlib.suppress(queue.Full):
            ready.put(item, timeout=0.1)
            return True
    return False
