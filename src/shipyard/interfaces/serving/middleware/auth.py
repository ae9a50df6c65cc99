"""API-key authentication: every request whose path is not public needs the key.

Which paths are public is the app's choice (``--public``); inference is never public. The key is a string, or
a callable asked at each request (``--api-key vault:...``: through the secret cache, so a key rotated in Vault is
taken after the cache's TTL); a key that cannot be read refuses the request (503), it never opens the door.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from shipyard.errors import BackendUnavailableError, ShipyardError
from shipyard.interfaces.serving.errors import Unauthorized, refusal

UNAUTHORIZED = "missing or wrong API key: send Authorization: Bearer KEY"


class APIKeyMiddleware:
    def __init__(self, app: ASGIApp, key: str | Callable[[], str], public: Callable[[str], bool]) -> None:
        if not key:
            raise ValueError("an empty API key would let everyone in")
        self.app = app
        self.key: Callable[[], str] = key if callable(key) else _fixed(key)
        self.public = public

    def __repr__(self) -> str:  # never the key
        return "APIKeyMiddleware(key=***)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.public(scope["path"]):
            try:
                allowed = self.authorized(Headers(scope=scope))
            except ShipyardError:  # the key's reference cannot be read now: refuse, never let in
                await refusal(BackendUnavailableError("the server cannot read its API key now; try again later"),
                              scope)(scope, receive, send)
                return
            if not allowed:
                await refusal(Unauthorized(UNAUTHORIZED), scope)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def authorized(self, headers: Headers) -> bool:
        given = presented_key(headers)
        if given is None:
            return False
        key = self.key()
        return bool(key) and hmac.compare_digest(given.encode(), key.encode())


def _fixed(key: str) -> Callable[[], str]:
    return lambda: key


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
