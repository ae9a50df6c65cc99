"""The model server: Open Inference Protocol v2 and plain JSON ``/predict`` over Starlette.

Errors are mapped here and only here: bad payloads get 400 with the field named, unknown models
or versions 404, a model that raises 500 with the request id, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import numpy as np
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shipyard import __version__
from shipyard.core.serving import oip
from shipyard.core.serving.routing import agree
from shipyard.errors import InvalidInputError
from shipyard.interfaces.serving.logs import InferenceLog
from shipyard.interfaces.serving.openapi import document
from shipyard.interfaces.serving.router import Router

MAX_BODY_BYTES = 16 * 1024 * 1024
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Prometheus metrics of one server, named by Prometheus conventions."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        labels = ["model", "version"]
        self.requests = Counter("shipyard_inference_requests", "Inference requests by outcome",
                                [*labels, "outcome"], registry=r)
        self.latency = Histogram("shipyard_inference_request_duration_seconds", "Time to answer an inference request",
                                 labels, buckets=LATENCY_BUCKETS, registry=r)
        self.batch = Histogram("shipyard_inference_batch_size", "Rows per predict call", labels,
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=r)
        self.in_flight = Gauge("shipyard_inference_in_flight", "Requests being answered", registry=r)
        self.load_seconds = Gauge("shipyard_model_load_seconds", "Time to load and verify a model", labels,
                                  registry=r)
        self.shadow = Counter("shipyard_shadow_comparisons", "Shadow answers compared with the primary's",
                              [*labels, "result"], registry=r)
        self.swaps = Counter("shipyard_model_swaps", "Primary version changes after an alias moved", ["model"],
                             registry=r)


def _error(status: int, message: str, request_id: str) -> JSONResponse:
    return JSONResponse({"error": message, "request_id": request_id}, status_code=status,
                        headers={"x-request-id": request_id})


class _TooLarge(Exception):
    pass


class _WrongShape(Exception):
    pass


def create_app(router: Router, max_body: int = MAX_BODY_BYTES, timeout: float = 30.0,
               background: Callable[[Router, Metrics], Coroutine[Any, Any, None]] | None = None,
               log: InferenceLog | None = None, api_key: str | None = None,
               on_shutdown: Callable[[], None] | None = None) -> Starlette:
    """A server for one model: its primary version, and optionally a canary and a shadow.

    ``log`` receives a sampled record per inference request; ``api_key``, when set, must come in
    an ``Authorization: Bearer KEY`` or ``x-api-key`` header on every inference request.
    """
    metrics = Metrics()
    for slot in (router.primary, router.canary, router.shadow):
        if slot is not None:
            metrics.load_seconds.labels(slot.served.name, slot.version).set(slot.served.load_seconds)
            if slot.batcher is not None:
                slot.batcher._observe = metrics.batch.labels(slot.served.name, slot.version).observe

    async def body_of(request: Request) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body:
            raise _TooLarge
        raw = await request.body()
        if len(raw) > max_body:
            raise _TooLarge
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise InvalidInputError(f"request body is not valid JSON: {exc}") from exc

    async def answer(request: Request, rows_of: Any, respond: Any, model_name: str | None = None,
                     model_version: str | None = None) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        if api_key is not None and not _authorized(request, api_key):
            return _error(401, "missing or wrong API key: send Authorization: Bearer KEY", request_id)
        name = router.name
        if model_name is not None and model_name != name:
            return _error(404, f"unknown model {model_name!r}; this server serves {name!r}", request_id)
        if model_version is not None:
            slot = router.by_version(model_version)
            if slot is None:
                return _error(404, f"{name} version {model_version} is not served here", request_id)
        else:
            slot = router.pick(request.headers.get(router.sticky_header) or request_id)
        version = slot.version
        start = time.perf_counter()
        metrics.in_flight.inc()
        outcome = "ok"
        rows: Any = None
        predictions: list[Any] | None = None
        try:
            try:
                rid, rows = rows_of(await body_of(request))
                width = slot.served.width
                if width is not None and len(rows[0]) != width:
                    raise _WrongShape(f"{'inputs[0].shape' if rid is not None or model_name else 'instances[0]'}: "
                                      f"rows have {len(rows[0])} features, the model takes {width}")
            except _WrongShape as exc:
                outcome = "rejected"
                return _error(422, str(exc), request_id)
            except _TooLarge:
                outcome = "rejected"
                return _error(413, f"request body is larger than {max_body} bytes", request_id)
            except InvalidInputError as exc:
                outcome = "rejected"
                return _error(400, str(exc), request_id)
            try:
                predictions = await asyncio.wait_for(slot.predict(rows), timeout)
            except TimeoutError:
                outcome = "timeout"
                return _error(504, f"the model did not answer within {timeout:g} s", request_id)
            except Exception as exc:
                outcome = "error"
                return _error(500, f"the model failed on this input ({type(exc).__name__}: {exc})", request_id)
            if router.shadow is not None and slot is not router.shadow:
                shadow_version = router.shadow.version

                def record(result: str, out: list[Any] | None) -> None:
                    if result == "compared":
                        result = "agree" if agree(out, predictions) else "disagree"
                    metrics.shadow.labels(name, shadow_version, result).inc()

                router.mirror(rows, predictions, record)
            return JSONResponse(respond(predictions, rid or request_id, version), headers={
                "x-model-name": name, "x-model-version": version, "x-request-id": request_id})
        finally:
            took = time.perf_counter() - start
            metrics.in_flight.dec()
            metrics.requests.labels(name, version, outcome).inc()
            metrics.latency.labels(name, version).observe(took)
            if log is not None and log.wants():
                entry: dict[str, Any] = {"request_id": request_id, "time": time.time(), "model": name,
                                         "version": version, "latency_ms": round(took * 1000, 3),
                                         "outcome": outcome}
                if log.with_payloads:
                    entry["inputs"] = rows.tolist() if isinstance(rows, np.ndarray) else rows
                    entry["outputs"] = predictions
                log.record(entry)

    def oip_rows(body: Any) -> tuple[str | None, Any]:
        rid, tensors = oip.parse_infer(body)
        if len(tensors) != 1:
            raise InvalidInputError("inputs: this model takes exactly one input tensor")
        t = tensors[0]
        data = np.asarray(t.data, dtype=object if t.datatype == "BYTES" else None)
        return rid, data.reshape(t.shape[0], -1)

    def oip_response(predictions: list[Any], rid: str, version: str) -> dict[str, Any]:
        return {"model_name": router.name, "model_version": version, "id": rid,
                "outputs": [oip.output_tensor("predict", predictions)]}

    async def infer(request: Request) -> Response:
        return await answer(request, oip_rows, oip_response, request.path_params["name"],
                            request.path_params.get("version"))

    def plain_rows(body: Any) -> tuple[None, Any]:
        rows = body.get("instances", body.get("inputs")) if isinstance(body, dict) else body
        if not isinstance(rows, list) or not rows:
            raise InvalidInputError('instances: send {"instances": [[feature, ...], ...]} (one list per row)')
        try:  # fast path: numpy checks the whole body in C
            array = np.asarray(rows, dtype=np.float64)
            if array.ndim == 2 and array.shape[1] > 0 and np.isfinite(array).all():
                return None, array
        except (ValueError, TypeError):
            pass
        for i, row in enumerate(rows):  # slow path, only to name the field that is wrong
            if not isinstance(row, list) or not row or not all(oip.is_number(v) for v in row):
                raise InvalidInputError(f"instances[{i}]: must be a non-empty list of finite numbers")
        raise InvalidInputError("instances: every row must have the same number of features")

    async def predict(request: Request) -> Response:
        return await answer(request, plain_rows, lambda predictions, rid, version: {
            "predictions": predictions, "model": router.name, "version": version})

    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": True})

    def unknown(request: Request) -> Response | None:
        if request.path_params["name"] != router.name:
            return _error(404, f"unknown model {request.path_params['name']!r}", uuid.uuid4().hex)
        return None

    async def model_metadata(request: Request) -> Response:
        if (missing := unknown(request)) is not None:
            return missing
        served = router.primary.served
        raw = served.version.signature.get("inputs")
        inputs: dict[str, Any] = raw if isinstance(raw, dict) else {}
        versions = [s.version for s in (router.primary, router.canary, router.shadow) if s is not None]
        return JSONResponse({
            "name": router.name, "versions": versions, "platform": served.version.flavor,
            "inputs": [{"name": "input-0", "datatype": _dtype(inputs), "shape": inputs.get("shape", [-1, -1])}],
            "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [-1]}],
        }, headers={"x-model-version": router.primary.version})

    async def model_ready(request: Request) -> Response:
        if (missing := unknown(request)) is not None:
            return missing
        return JSONResponse({"name": router.name, "ready": True})

    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": "shipyard", "version": __version__, "extensions": []})

    spec = document(router.name)

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(background(router, metrics)) if background else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if log is not None:
                await asyncio.to_thread(log.close)
            if on_shutdown is not None:  # uvicorn re-raises SIGTERM after this: later code would not run
                await asyncio.to_thread(on_shutdown)

    routes = [
        Route("/v2", server_metadata),
        Route("/v2/health/live", live),
        Route("/v2/health/ready", ready),
        Route("/v2/models/{name}", model_metadata),
        Route("/v2/models/{name}/ready", model_ready),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
        Route("/predict", predict, methods=["POST"]),
        Route("/metrics", prometheus),
        Route("/openapi.json", openapi),
    ]
    async def crashed(request: Request, exc: Exception) -> Response:
        # the one outermost 500: a bug answers as JSON with a request id, and the server keeps serving
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        return _error(500, f"internal error ({type(exc).__name__}); request id {request_id}", request_id)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: crashed})
    app.state.metrics = metrics
    return app


def _authorized(request: Request, key: str) -> bool:
    given = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
    return hmac.compare_digest(given.encode(), key.encode())


def _dtype(spec: dict[str, Any]) -> str:
    return {"float64": "FP64", "float32": "FP32", "int64": "INT64", "int32": "INT32"}.get(
        str(spec.get("dtype")), "FP64")
