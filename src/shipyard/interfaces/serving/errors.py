"""Errors to HTTP answers, in one table: every error gets the status of the nearest class in its MRO.

``STATUS`` is the one place a status is chosen. ``ShipyardError`` classes come from the library;
``Refused`` classes are the server's own refusals (a missing key, a body too large, tensors that do
not fit the model, a model that raised, a request past the timeout). What a client sees:

    400  the request is not a valid one: not JSON, a missing or malformed field, data that does not
         match its own shape or datatype (``InvalidInputError``; the message names the field)
    401  a missing or wrong API key                    (``Unauthorized``)
    404  an unknown model, version or path             (``NotFoundError``)
    405  a method the path does not take (GET on infer)
    413  a body past the limit, counted as it streams  (``TooLarge``; the connection is closed)
    422  a valid request the model cannot take: rows of the wrong width, more than one input
         tensor, BYTES for a model of numbers          (``DoesNotFit``)
    500  the model raised on this input, or a bug      (``ModelFailed``; the request id is in the answer)
    503  the registry's database or store is unreachable
    504  not answered within --timeout                 (``TimedOut``; the connection is closed)

Anything else is a bug: ``crashed`` is the one outermost 500, a JSON answer with a request id, and the
server keeps serving. Every error answer is ``{"error": MESSAGE, "request_id": ID}``.
"""

from __future__ import annotations

import uuid
from collections.abc import MutableMapping
from typing import Any

from starlette.exceptions import HTTPException
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


class Refused(Exception):
    """A request the server refuses on its own account; its class's ``STATUS`` entry is the answer's status.

    ``close`` also ends the connection (the rest of the body is never read).
    """

    def __init__(self, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.close = close


class Unauthorized(Refused):
    """No API key, or a wrong one."""


class TooLarge(Refused):
    """A request body past the limit."""


class DoesNotFit(Refused):
    """A valid request whose tensors the model cannot take (their width, their count, their datatype)."""


class ModelFailed(Refused):
    """The model raised on this input."""


class TimedOut(Refused):
    """The request was not answered within the timeout."""


STATUS: dict[type[Exception], int] = {
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
    Refused: 400,
    Unauthorized: 401,
    TooLarge: 413,
    DoesNotFit: 422,
    ModelFailed: 500,
    TimedOut: 504,
}
# what each status of an inference request means, as the OpenAPI document tells clients
MEANING = {
    400: "malformed request: not JSON, a missing or malformed field, data that does not match its own shape "
         "or datatype; the message names the field",
    401: "missing or wrong API key",
    404: "unknown model or version",
    413: "body too large (counted as it streams)",
    422: "a valid request the model cannot take: rows of the wrong width, more than one input tensor, "
         "BYTES for a model of numbers",
    500: "the model failed on this input",
    503: "the registry's database or store cannot be reached",
    504: "longer than --timeout",
}
REQUEST_ID = "shipyard.request_id"


def status_of(exc: BaseException) -> int:
    """The HTTP status for ``exc``: the table's entry nearest in its MRO (500 for anything it does not name)."""
    if isinstance(exc, HTTPException):  # Starlette's own: an unknown path (404), a wrong method (405)
        return exc.status_code
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


def refusal(exc: Exception, scope: MutableMapping[str, Any]) -> JSONResponse:
    """The answer to an expected error: its status from ``STATUS``, its message, the request id."""
    if isinstance(exc, HTTPException):
        answer = error_response(exc.status_code, exc.detail, request_id(scope))
        answer.headers.update(exc.headers or {})  # a 405's Allow
        return answer
    return error_response(status_of(exc), str(exc), request_id(scope), getattr(exc, "close", False))


async def expected(request: Request, exc: Exception) -> Response:
    return refusal(exc, request.scope)


async def crashed(request: Request, exc: Exception) -> Response:
    rid = request_id(request.scope)
    return error_response(500, f"internal error ({type(exc).__name__}); request id {rid}", rid)


HANDLERS: dict[Any, Any] = {ShipyardError: expected, Refused: expected, HTTPException: expected, Exception: crashed}
