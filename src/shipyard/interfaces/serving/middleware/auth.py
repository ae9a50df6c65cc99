"""API-key authentication: every request whose path is not public needs the key.

Which paths are public is the app's choice (``--public``); inference is never public.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from shipyard.interfaces.serving.errors import Unauthorized, refusal

UNAUTHORIZED = "missing or wrong API key: send Authorization: Bearer KEY"


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, key: str, public: Callable[[str], bool]) -> None:
        if not key:
            raise ValueError("an empty API key would let everyone in")
        self.app = app
        self.key = key.encode()
        self.public = public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.public(scope["path"]) and not self.authorized(Headers(scope=scope)):
            await refusal(Unauthorized(UNAUTHORIZED), scope)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def authorized(self, headers: Headers) -> bool:
        given = presented_key(headers)
        return given is not None and hmac.compare_digest(given.encode(), self.key)


def presented_key(headers: Headers) -> str | None:
    """The key in ``x-api-key``, or in ``Authorization: Bearer KEY`` (the scheme in any case, RFC 9110).

    A bare ``Authorization: KEY`` without a scheme is not a key: it is refused like a wrong one.
    """
    if (key := headers.get("x-api-key")) is not None:
        return key
    scheme, _, credentials = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()
