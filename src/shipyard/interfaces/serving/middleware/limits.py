"""Limits on one request: its body size, counted as it streams, and its time, from head to last byte.

A body is refused with 413 as soon as it passes the limit, whether or not it declared a
Content-Length (a chunked body is never buffered past the limit), and the connection is closed so
the rest is never read; so is any connection answered before its body was read to the end. The
timeout covers reading the body, parsing, predicting and writing the answer: past it the request
is answered 504 and its connection closed.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.interfaces.serving.errors import TimedOut, TooLarge, refusal

MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_TIMEOUT = 30.0


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        if max_body < 0 or (timeout is not None and timeout <= 0):
            raise ValueError(f"limits must be positive, not max_body={max_body}, timeout={timeout}")
        self.app = app
        self.max_body = max_body
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body
        length = next((v for k, v in scope["headers"] if k == b"content-length"), b"")
        declared = int(length) if length.isdigit() else 0
        chunked = any(k == b"transfer-encoding" for k, _ in scope["headers"])
        unread = declared > 0 or chunked  # a body is coming that no one has read to its end yet
        received = 0

        async def counted() -> Message:
            nonlocal received, unread
            if declared > limit:
                raise TooLarge(f"request body is larger than {limit} bytes", close=True)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise TooLarge(f"request body is larger than {limit} bytes", close=True)
                unread = unread and bool(message.get("more_body", False))
            return message

        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if unread:  # answered before the body was read (404, 401...): close rather than drain the rest
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                await self.app(scope, counted, watch)
        except TimeoutError:
            if not deadline.expired():
                raise
            if not started:  # else the answer is half written: uvicorn closes the connection
                answer = refusal(TimedOut(f"the request was not answered within {self.timeout:g} s", close=True),
                                 scope)
                await answer(scope, receive, send)
