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
from shipyard.interfaces.serving.model import MAX_PROBA_VALUES, ServedModel, count, features
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
PROBA_VALUES = ("1", "true", "yes")  # /predict?proba=1


@dataclass(frozen=True, slots=True)
class Asked:
    """What a request body asks: its id (if it gives one), the rows, and the outputs it wants."""

    request_id: str | None
    rows: Any
    outputs: tuple[str, ...] = (oip.OUTPUT_NAME,)


Rows = Callable[[Any, ServedModel], Asked]
Respond = Callable[[list[Any] | None, list[Any] | None, str, Slot], dict[str, Any]]


async def infer(request: Request) -> Response:
    serving: Serving = request.app.state.serving
    router = serving.router
    name, version = request.path_params["name"], request.path_params.get("version")
    if name != router.name:
        raise NotFoundError(f"unknown model {name!r}; this server serves {router.name!r}")
    slot = router.by_version(version) if version is not None else None
    if version is not None and slot is None:
        raise NotFoundError(f"{router.name} version {version} is not served here")

    def respond(predictions: list[Any] | None, probabilities: list[Any] | None, rid: str,
                answered: Slot) -> dict[str, Any]:
        outputs = []
        if predictions is not None:
            outputs.append(oip.output_tensor(oip.OUTPUT_NAME, predictions, answered.served.output_datatype))
        if probabilities is not None:
            tensor = oip.output_tensor(oip.PROBA_NAME, probabilities, "FP64")
            classes = answered.served.classes
            if classes is not None:
                tensor["parameters"] = {"classes": classes}
            outputs.append(tensor)
        return {"model_name": router.name, "model_version": answered.version, "id": rid, "outputs": outputs}

    return await answer(request, serving, slot, oip_rows, respond, "inputs[0].shape")


async def predict(request: Request) -> Response:
    serving: Serving = request.app.state.serving
    name = serving.router.name
    proba = request.query_params.get("proba", "").lower() in PROBA_VALUES

    def rows_of(body: Any, served: ServedModel) -> Asked:
        asked = plain_rows(body, served)
        return Asked(None, asked.rows, (oip.OUTPUT_NAME, oip.PROBA_NAME) if proba else asked.outputs)

    def respond(predictions: list[Any] | None, probabilities: list[Any] | None, rid: str,
                answered: Slot) -> dict[str, Any]:
        body: dict[str, Any] = {"predictions": predictions, "model": name, "version": answered.version}
        if probabilities is not None:
            body["probabilities"] = probabilities
            classes = answered.served.classes
            if classes is not None:
                body["classes"] = classes
        return body

    return await answer(request, serving, None, rows_of, respond, "instances[0]")


async def answer(request: Request, serving: Serving, slot: Slot | None, rows_of: Rows, respond: Respond,
                 width_field: str) -> Response:
    router = serving.router
    rid = request_id(request.scope)
    if slot is None:
        slot = router.pick(request.headers.get(router.sticky_header) or rid)
    seen = Observation(router.name, slot.version, rid)
    request.scope.setdefault("state", {})[OBSERVED] = seen
    raw = await request.body()  # the limits middleware refuses a body past the limit as it streams
    if len(raw) > INLINE_BYTES:  # parsing a big body on the loop would stall every other request
        asked = await asyncio.to_thread(lambda: rows_of(parse_json(raw), slot.served))
    else:
        asked = rows_of(parse_json(raw), slot.served)
    rows = asked.rows
    width = slot.served.width
    found = features(rows)
    if width is not None and found is not None and found != width:
        raise DoesNotFit(f"{width_field}: rows have {found} features, the model takes {width}")
    if oip.PROBA_NAME in asked.outputs and not slot.served.has_proba:
        raise DoesNotFit(f"outputs: {router.name} version {slot.version} has no predict_proba, so no "
                         f"{oip.PROBA_NAME}; ask for {oip.OUTPUT_NAME}")
    if oip.PROBA_NAME in asked.outputs:  # a row of the answer per class: bounded before the model is asked
        classes = slot.served.classes
        asked_values = count(rows) * max(len(classes) if classes is not None else 1, 1)
        if asked_values > MAX_PROBA_VALUES:
            raise InvalidInputError(f"{width_field.split('[')[0]}: probabilities for {count(rows)} rows would be "
                                    f"{asked_values} values, more than the limit of {MAX_PROBA_VALUES}; send "
                                    "fewer rows at once")
    seen.rows = rows
    predictions: list[Any] | None = None
    probabilities: list[Any] | None = None
    try:  # in a worker thread; the limits middleware times it out
        if oip.OUTPUT_NAME in asked.outputs:
            predictions = await slot.predict(rows)
        if oip.PROBA_NAME in asked.outputs:
            probabilities = await asyncio.to_thread(slot.served.proba_rows, rows)
    except InvalidInputError:  # the answer's own bound (``ServedModel.proba_rows``)
        raise
    except Exception as exc:
        raise ModelFailed(f"the model failed on this input ({type(exc).__name__}: {exc})") from exc
    if predictions is not None:
        seen.predictions = predictions
        if router.shadow is not None and slot is not router.shadow:
            mirror(router, serving.metrics, rows, predictions, serving.drift)
        if slot is router.canary:
            serving.comparisons.compare(router, slot, rows, predictions)
    content = respond(predictions, probabilities, asked.request_id or rid, slot)
    headers = {"x-model-name": router.name, "x-model-version": slot.version, "x-request-id": rid}
    if count(rows) > INLINE_ROWS:
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


def oip_rows(body: Any, served: ServedModel) -> Asked:
    rid, tensors = oip.parse_infer(body)
    outputs = oip.parse_outputs(body)
    if served.sparse and {t.name for t in tensors} == oip.SPARSE_INPUTS and len(tensors) == 3:
        parts = {t.name: t for t in tensors}
        for part in ("indptr", "indices"):
            if parts[part].datatype not in oip.INT_RANGES:
                raise InvalidInputError(f"inputs[{part}].datatype: the CSR {part} are integers (INT64)")
        if parts["values"].datatype in ("BYTES", "BOOL"):
            raise InvalidInputError("inputs[values].datatype: the CSR values are numbers (FP64)")
        csr = {"format": "csr", "indptr": parts["indptr"].data, "indices": parts["indices"].data,
               "values": parts["values"].data}
        return Asked(rid, sparse_rows(csr, served, "inputs"), outputs)
    if len(tensors) != 1:
        hint = " (or, for its sparse rows, three named indptr, indices and values)" if served.sparse else ""
        raise DoesNotFit(f"inputs: {served.name} takes exactly one input tensor{hint}, not {len(tensors)}")
    t = tensors[0]
    if t.datatype == "BYTES" and not served.takes_strings:
        raise DoesNotFit(f"inputs[0].datatype: BYTES is not supported by {served.name}, which takes "
                         f"{served.datatype}; send numbers")
    if served.takes_strings and t.datatype != "BYTES":
        raise DoesNotFit(f"inputs[0].datatype: {served.name} takes text: send a BYTES tensor of strings, "
                         f"not {t.datatype}")
    data = np.asarray(t.data, dtype=object if t.datatype == "BYTES" else None)
    if served.takes_strings and served.rank == 1:  # one string a row: [n] or [n, 1]
        if len(t.shape) > 2 or (len(t.shape) == 2 and t.shape[1] != 1):
            raise DoesNotFit(f"inputs[0].shape: {served.name} takes one string a row, shape [n] or [n, 1], "
                             f"not {list(t.shape)}")
        return Asked(rid, data.reshape(t.shape[0]), outputs)
    return Asked(rid, data.reshape(t.shape[0], -1), outputs)


def plain_rows(body: Any, served: ServedModel) -> Asked:
    rows = body.get("instances", body.get("inputs")) if isinstance(body, dict) else body
    if served.sparse and (isinstance(rows, dict) or (isinstance(rows, list) and rows and isinstance(rows[0], dict))):
        return Asked(None, sparse_rows(rows, served, "instances"))
    if served.takes_strings:
        return Asked(None, text_rows(rows, served))
    if not isinstance(rows, list) or not rows:
        raise InvalidInputError('instances: send {"instances": [[feature, ...], ...]} (one list per row)')
    try:  # fast path: numpy checks the whole body in C
        array = np.asarray(rows, dtype=np.float64)
        if array.ndim == 2 and array.shape[1] > 0 and np.isfinite(array).all():
            return Asked(None, array)
    except (ValueError, TypeError, OverflowError):
        pass
    for i, row in enumerate(rows):  # slow path, only to name the field that is wrong
        if not isinstance(row, list) or not row or not all(oip.is_number(v) for v in row):
            raise InvalidInputError(f"instances[{i}]: must be a non-empty list of finite numbers")
    raise InvalidInputError("instances: every row must have the same number of features")


def text_rows(rows: Any, served: ServedModel) -> Any:
    """``{"instances": ["some text", ...]}`` for a model registered on strings (one string a row); rows of
    strings (``[["a", "b"], ...]``) for one registered on a table of text."""
    if not isinstance(rows, list) or not rows:
        raise InvalidInputError('instances: send {"instances": ["text", ...]} (one string per row)')
    if served.rank == 1:
        for i, row in enumerate(rows):
            if isinstance(row, list) and len(row) == 1:  # [["text"], ...]: one column
                row = row[0]
            if not isinstance(row, str):
                raise InvalidInputError(f"instances[{i}]: must be a string ({served.name} takes text)")
        return np.asarray([r[0] if isinstance(r, list) else r for r in rows], dtype=object)
    width = len(rows[0]) if isinstance(rows[0], list) else 0
    for i, row in enumerate(rows):
        if not isinstance(row, list) or not row or len(row) != width or \
                not all(isinstance(v, str) or oip.is_number(v) for v in row):
            raise InvalidInputError(f"instances[{i}]: must be a list of {width or 'some'} strings or numbers, as "
                                    "every row")
    return np.asarray(rows, dtype=object)


MAX_SPARSE_ROWS = 100_000  # every sparse form: the CSR object, one object a row, OIP's three tensors


def sparse_rows(given: Any, served: ServedModel, field: str) -> Any:
    """A CSR matrix from a sparse request: ``{"indptr", "indices", "values"[, "shape"]}`` (the CSR parts, as the
    golden examples store them), or one ``{"indices", "values"}`` object per row; checked by the flavor."""
    if isinstance(given, list):
        if len(given) > MAX_SPARSE_ROWS:
            raise InvalidInputError(f"{field}: {len(given)} rows is more than the limit of {MAX_SPARSE_ROWS}; "
                                "send them in batches")
        indptr: list[int] = [0]
        indices: list[Any] = []
        values: list[Any] = []
        for i, row in enumerate(given):
            if not isinstance(row, dict) or set(row) - {"indices", "values"}:
                raise InvalidInputError(f'{field}[{i}]: must be {{"indices": [column, ...], "values": [number, ...]}}')
            cols, vals = row.get("indices"), row.get("values")
            if not isinstance(cols, list) or not isinstance(vals, list) or len(cols) != len(vals):
                raise InvalidInputError(f"{field}[{i}]: indices and values must be two lists of the same length")
            indices.extend(cols)
            values.extend(vals)
            indptr.append(len(values))
        given = {"indptr": indptr, "indices": indices, "values": values}
    if not isinstance(given, dict):
        raise InvalidInputError(f"{field}: a sparse input is an object with indptr, indices and values")
    pointers = given.get("indptr")
    if isinstance(pointers, list) and len(pointers) - 1 > MAX_SPARSE_ROWS:  # an empty row costs 2 bytes of JSON
        raise InvalidInputError(f"{field}.indptr: {len(pointers) - 1} rows is more than the limit of "
                                f"{MAX_SPARSE_ROWS}; send them in batches")
    csr = {**{k: v for k, v in given.items() if k != "format"}, "format": "csr"}
    if csr.get("shape") is None:
        if served.width is None:
            raise InvalidInputError(f"{field}.shape: give [rows, columns]: this model's signature has no width")
        pointers = csr.get("indptr")
        csr["shape"] = [max(len(pointers) - 1, 0) if isinstance(pointers, list) else 0, served.width]
    try:
        return served.from_json(csr)
    except InvalidInputError as exc:
        raise InvalidInputError(str(exc).replace("sparse input", field, 1)) from None
