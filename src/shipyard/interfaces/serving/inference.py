"""The two inference endpoints: OIP v2 ``infer`` and plain JSON ``/predict``.

Each picks the version that answers, reads the body into rows, asks the model and writes the answer.
Malformed payloads raise ``InvalidInputError`` (400, the field named), valid ones the model cannot
take ``DoesNotFit`` (422), a model that raises ``ModelFailed`` (500, with its message); the one table
in ``errors`` turns them into answers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shipyard.core.serving import oip
from shipyard.core.serving.routing import agree
from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.interfaces.serving.drift import LiveDrift
from shipyard.interfaces.serving.errors import DoesNotFit, ModelFailed, request_id
from shipyard.interfaces.serving.middleware.metrics import OBSERVED, Metrics, Observation
from shipyard.interfaces.serving.model import ServedModel
from shipyard.interfaces.serving.quality import Comparisons
from shipyard.interfaces.serving.router import Router, Slot


@dataclass
class Serving:
    """What the endpoints need, kept on ``app.state.serving``."""

    router: Router
    metrics: Metrics
    comparisons: Comparisons
    drift: LiveDrift | None = None


# below these sizes the work takes less than a hop to a worker thread: it stays on the event loop
INLINE_BYTES = 64 * 1024
INLINE_ROWS = 4096
Rows = Callable[[Any, ServedModel], tuple[str | None, Any]]


async def infer(request: Request) -> Response:
    serving: Serving = request.app.state.serving
    router = serving.router
    name, version = request.path_params["name"], request.path_params.get("version")
    if name != router.name:
        raise NotFoundError(f"unknown model {name!r}; this server serves {router.name!r}")
    slot = router.by_version(version) if version is not None else None
    if version is not None and slot is None:
        raise NotFoundError(f"{router.name} version {version} is not served here")

    def respond(predictions: list[Any], rid: str, answered: Slot) -> dict[str, Any]:
        return {"model_name": router.name, "model_version": answered.version, "id": rid,
                "outputs": [oip.output_tensor(oip.OUTPUT_NAME, predictions, answered.served.output_datatype)]}

    return await answer(request, serving, slot, oip_rows, respond, "inputs[0].shape")


async def predict(request: Request) -> Response:
    serving: Serving = request.app.state.serving
    name = serving.router.name

    def respond(predictions: list[Any], rid: str, answered: Slot) -> dict[str, Any]:
        return {"predictions": predictions, "model": name, "version": answered.version}

    return await answer(request, serving, None, plain_rows, respond, "instances[0]")


async def answer(request: Request, serving: Serving, slot: Slot | None, rows_of: Rows,
                 respond: Callable[[list[Any], str, Slot], dict[str, Any]], width_field: str) -> Response:
    router = serving.router
    rid = request_id(request.scope)
    if slot is None:
        slot = router.pick(request.headers.get(router.sticky_header) or rid)
    seen = Observation(router.name, slot.version, rid)
    request.scope.setdefault("state", {})[OBSERVED] = seen
    raw = await request.body()  # the limits middleware refuses a body past the limit as it streams
    if len(raw) > INLINE_BYTES:  # parsing a big body on the loop would stall every other request
        given_id, rows = await asyncio.to_thread(lambda: rows_of(parse_json(raw), slot.served))
    else:
        given_id, rows = rows_of(parse_json(raw), slot.served)
    width = slot.served.width
    if width is not None and len(rows[0]) != width:
        raise DoesNotFit(f"{width_field}: rows have {len(rows[0])} features, the model takes {width}")
    seen.rows = rows
    try:
        predictions = await slot.predict(rows)  # in a worker thread; the limits middleware times it out
    except Exception as exc:
        raise ModelFailed(f"the model failed on this input ({type(exc).__name__}: {exc})") from exc
    seen.predictions = predictions
    if router.shadow is not None and slot is not router.shadow:
        mirror(router, serving.metrics, rows, predictions, serving.drift)
    if slot is router.canary:
        serving.comparisons.compare(router, slot, rows, predictions)
    content = respond(predictions, given_id or rid, slot)
    headers = {"x-model-name": router.name, "x-model-version": slot.version, "x-request-id": rid}
    if len(predictions) > INLINE_ROWS:
        return await asyncio.to_thread(JSONResponse, content, headers=headers)
    return JSONResponse(content, headers=headers)


def mirror(router: Router, metrics: Metrics, rows: Any, predictions: list[Any],
           drift: LiveDrift | None = None) -> None:
    """Ask the shadow too, in the background; its answer is only compared and counted (and, with ``drift``,
    watched against the shadow's own reference)."""
    shadow = router.shadow
    if shadow is None:
        return
    counter = metrics.shadow

    def record(result: str, out: list[Any] | None) -> None:
        if result == "compared":
            if drift is not None and out:
                drift.observe(router.name, shadow.version, rows, out, time.time())
            result = "agree" if agree(out, predictions) else "disagree"
        counter.labels(router.name, shadow.version, result).inc()

    router.mirror(rows, predictions, record)


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:  # the parser's own bound on nesting, which no valid payload comes near
        raise InvalidInputError("request body: JSON nested too deeply; tensors are a few lists deep") from None
    except ValueError as exc:
        raise InvalidInputError(f"request body is not valid JSON: {exc}") from exc


def oip_rows(body: Any, served: ServedModel) -> tuple[str | None, Any]:
    rid, tensors = oip.parse_infer(body)
    if len(tensors) != 1:
        raise DoesNotFit(f"inputs: {served.name} takes exactly one input tensor, not {len(tensors)}")
    t = tensors[0]
    if t.datatype == "BYTES" and not served.takes_strings:
        raise DoesNotFit(f"inputs[0].datatype: BYTES is not supported by {served.name}, which takes "
                                f"{served.datatype}; send numbers")
    data = np.asarray(t.data, dtype=object if t.datatype == "BYTES" else None)
    return rid, data.reshape(t.shape[0], -1)


def plain_rows(body: Any, served: ServedModel) -> tuple[None, Any]:
    rows = body.get("instances", body.get("inputs")) if isinstance(body, dict) else body
    if not isinstance(rows, list) or not rows:
        raise InvalidInputError('instances: send {"instances": [[feature, ...], ...]} (one list per row)')
    try:  # fast path: numpy checks the whole body in C
        array = np.asarray(rows, dtype=np.float64)
        if array.ndim == 2 and array.shape[1] > 0 and np.isfinite(array).all():
            return None, array
    except (ValueError, TypeError, OverflowError):
        pass
    for i, row in enumerate(rows):  # slow path, only to name the field that is wrong
        if not isinstance(row, list) or not row or not all(oip.is_number(v) for v in row):
            raise InvalidInputError(f"instances[{i}]: must be a non-empty list of finite numbers")
    raise InvalidInputError("instances: every row must have the same number of features")
