"""The inference log: sampled per-request records, appended off the request path, rotated into the store.

The server's drift monitor adds its drift windows (``kind: "drift-window"``), which are kept whole (``keep``).

``record`` only puts a dict on a queue (dropping, and counting, when the writer falls behind); a
writer thread appends JSON lines to a file and, when the file is big or old enough or the server
stops, stores it content-addressed and records it on the server's run as an artifact, where
monitoring and drift checks find it later.
"""

from __future__ import annotations

import json
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROTATE_BYTES = 16 * 1024 * 1024
ROTATE_SECONDS = 300.0
MAX_PENDING = 100_000


class InferenceLog:
    def __init__(self, folder: Path, publish: Callable[[Path], None], sample: float = 1.0,
                 with_payloads: bool = False, rotate_bytes: int = ROTATE_BYTES,
                 rotate_seconds: float = ROTATE_SECONDS) -> None:
        self.folder = folder
        self.sample = sample
        self.with_payloads = with_payloads
        self.dropped = 0
        self._publish = publish  # stores a finished file (and records it); runs on the writer thread
        self._rotate_bytes = rotate_bytes
        self._rotate_seconds = rotate_seconds
        self._queue: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._write, name="inference-log", daemon=True)
        self._thread.start()

    def wants(self) -> bool:
        return self.sample >= 1.0 or random.random() < self.sample

    def record(self, entry: dict[str, Any]) -> None:
        """Never blocks: a full queue drops the record and counts it."""
        if self._queue.qsize() >= MAX_PENDING:
            self.dropped += 1
            return
        self._queue.put_nowait(entry)

    def keep(self, entry: dict[str, Any]) -> None:
        """A record that is never sampled nor dropped (a drift window: one per version a sub-window)."""
        self._queue.put_nowait(entry)

    def close(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _write(self) -> None:
        out = None
        path: Path | None = None
        opened = 0.0
        while True:
            try:
                entry = self._queue.get(timeout=1.0)
            except queue.Empty:
                entry = {}
            if entry is None:
                break
            if entry:
                if out is None:
                    path = self.folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.jsonl"
                    out = open(path, "a", buffering=1024 * 1024)  # noqa: SIM115 - kept open across records
                    opened = time.monotonic()
                out.write(json.dumps(entry, separators=(",", ":"), default=str) + "\n")
            if out is not None and path is not None and (
                    out.tell() >= self._rotate_bytes or time.monotonic() - opened >= self._rotate_seconds):
                out.close()
                self._publish(path)
                out, path = None, None
        if out is not None and path is not None:
            out.close()
            self._publish(path)
