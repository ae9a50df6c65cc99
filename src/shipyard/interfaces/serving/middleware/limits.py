"""Size limits: a request body larger than the limit is refused with 413."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.interfaces.serving.errors import Refused

MAX_BODY_BYTES = 16 * 1024 * 1024


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        too_large = length is not None and length.isdigit() and int(length) > self.max_body

        async def checked() -> Message:
            if too_large:
                raise Refused(413, f"request body is larger than {self.max_body} bytes")
            return await receive()

        await self.app(scope, receive if not too_large else checked, send)
