"""Errors to HTTP answers, in one table: a ``ShipyardError`` gets the status of the nearest class in its MRO.

``Refused`` is the server's own refusal that carries its status (401, 413, 422, 504, a model's failure).
Anything else is a bug: ``crashed`` is the one outermost 500, a JSON answer with a request id, and the
server keeps serving.
"""

from __future__ import annotations

import uuid
from collections.abc import MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shipyard.errors import (
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    ImmutableError,
    IntegrityError,
    InvalidInputError,
    InvalidReferenceError,
    MissingExtraError,
    NotFoundError,
    ShipyardError,
)

STATUS: dict[type[ShipyardError], int] = {
    ShipyardError: 500,
    ConfigError: 500,
    NotFoundError: 404,
    InvalidReferenceError: 400,
    InvalidInputError: 400,
    ImmutableError: 409,
    ConflictError: 409,
    IntegrityError: 500,
    BackendUnavailableError: 503,
    MissingExtraError: 500,
}
REQUEST_ID = "shipyard.request_id"


class Refused(Exception):
    """A request the server answers with ``status`` and a message; ``close`` also ends the connection."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.close = close


def status_of(exc: BaseException) -> int:
    """The HTTP status for ``exc``: its own for ``Refused``, else the table's entry nearest in the MRO."""
    if isinstance(exc, Refused):
        return exc.status
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 500


def request_id(scope: MutableMapping[str, Any]) -> str:
    """The caller's ``x-request-id``, or a new one; the same for every part of the server that asks."""
    state = scope.setdefault("state", {})
    rid = state.get(REQUEST_ID)
    if rid is None:
        given = next((v for k, v in scope.get("headers", ()) if k == b"x-request-id"), b"")
        rid = state[REQUEST_ID] = given.decode("latin-1") or uuid.uuid4().hex
    return str(rid)


def error_response(status: int, message: str, rid: str, close: bool = False) -> JSONResponse:
    headers = {"x-request-id": rid}
    if close:
        headers["connection"] = "close"
    return JSONResponse({"error": message, "request_id": rid}, status_code=status, headers=headers)


async def expected(request: Request, exc: Exception) -> Response:
    return error_response(status_of(exc), str(exc), request_id(request.scope), getattr(exc, "close", False))


async def crashed(request: Request, exc: Exception) -> Response:
    rid = request_id(request.scope)
    return error_response(500, f"internal error ({type(exc).__name__}); request id {rid}", rid)


HANDLERS: dict[Any, Any] = {ShipyardError: expected, Refused: expected, Exception: crashed}
