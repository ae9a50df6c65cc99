"""Connections: a deadline for every request head, a cap on open connections, rate-limited error logs.

uvicorn's h11 protocol has a keep-alive timeout but no deadline for the head of a request: a client
that opens a connection and sends nothing (or half a request line) holds a file descriptor forever,
and a thousand of them exhaust the process's open files. ``GuardedH11Protocol`` closes a connection
whose request head has not fully arrived ``head_timeout`` seconds after it began waiting for one,
and keeps at most ``max_connections`` open: a new connection past the cap closes the oldest one still
waiting for a head (an idle or stalled one), or, when every connection is busy, is closed itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT = 10.0
KEEP_ALIVE = 5.0
MAX_CONNECTIONS = 1000
BACKLOG = 256  # also how many connections asyncio accepts in one go, before any of them can be checked
MAX_HEAD_BYTES = 16 * 1024  # h11's own default, set explicitly: a longer request head is answered 400
OPEN_FILES_RESERVE = 64  # descriptors kept for the store, the database, logs and imports
LOG_INTERVAL = 10.0

log = logging.getLogger("shipyard.serve.connections")


@dataclass
class Guard:
    """Shared by one server's connections: those waiting for a request head, oldest first."""

    head_timeout: float = HEAD_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    waiting: dict[GuardedH11Protocol, None] = field(default_factory=dict)
    closed_idle: int = 0
    refused: int = 0

    def make_room(self, newcomer: GuardedH11Protocol) -> bool:
        """Close the oldest connection waiting for a head; False when there is none (all are busy)."""
        victim = next((p for p in self.waiting if p is not newcomer), None)
        if victim is None:
            self.refused += 1
            log.warning("refused a connection: %d are open and answering requests (--max-connections)",
                        self.max_connections)
            return False
        self.closed_idle += 1
        log.warning("closed an idle connection to make room: %d are open (--max-connections)", self.max_connections)
        victim.drop()
        return True


def protocol_class(guard: Guard) -> type[GuardedH11Protocol]:
    """The protocol class uvicorn instantiates per connection, bound to one server's ``guard``."""
    return type("BoundGuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})


class GuardedH11Protocol(H11Protocol):
    guard: Guard
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.guard.max_connections and not self.guard.make_room(self):
            self.drop()
            return
        self._await_head(deadline=True)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            # part of a head arrived on an idle keep-alive connection: from now on the head deadline applies
            self._await_head(deadline=True)
        else:
            self._head_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._await_head(deadline=False)  # idle keep-alive: uvicorn's keep-alive timeout applies

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def drop(self) -> None:
        self._head_arrived()
        if not self.transport.is_closing():
            with contextlib.suppress(h11.LocalProtocolError):
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()

    def _await_head(self, deadline: bool) -> None:
        self.guard.waiting[self] = None
        if deadline and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.guard.head_timeout, self._head_late)

    def _head_arrived(self) -> None:
        self.guard.waiting.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE:
            self.drop()


class RateLimited(logging.Filter):
    """Lets one record of a kind (logger and message) through per ``interval`` seconds.

    The next one let through says how many were held back, so a flood of one error costs a line
    per interval instead of filling the disk.
    """

    def __init__(self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self._clock = clock
        self._last: dict[tuple[str, Any], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg).split("\n", 1)[0][:80])  # asyncio's messages differ past line one
        now = self._clock()
        last, held = self._last.get(key, (-self.interval - 1.0, 0))
        if now - last < self.interval:
            self._last[key] = (last, held + 1)
            return False
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {now - last:.0f} s not shown)"
        return True


RATE_LIMITED_LOGGERS = ("uvicorn.error", "asyncio", "shipyard.serve.connections")


def limit_logging(interval: float = LOG_INTERVAL) -> RateLimited:
    """Rate-limit the server's error logs (uvicorn's, asyncio's, Shipyard's)."""
    limiter = RateLimited(interval)
    for name in RATE_LIMITED_LOGGERS:
        logging.getLogger(name).addFilter(limiter)
    return limiter


def raise_open_files_limit() -> int:
    """Raise the soft limit on open files to the hard limit; return the limit now in force (0: unknown)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return 0 if soft == resource.RLIM_INFINITY else int(soft)
