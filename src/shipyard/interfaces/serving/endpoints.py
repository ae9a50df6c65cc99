"""The server's small endpoints: health, metadata, the OpenAPI document, Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from shipyard import __version__
from shipyard.errors import NotFoundError
from shipyard.interfaces.serving.inference import Serving
from shipyard.interfaces.serving.openapi import document
from shipyard.interfaces.serving.router import Router, Slot


async def live(request: Request) -> Response:
    return JSONResponse({"live": True})


async def ready(request: Request) -> Response:
    return JSONResponse({"ready": True})


async def server_metadata(request: Request) -> Response:
    return JSONResponse({"name": "shipyard", "version": __version__, "extensions": []})


def _router(request: Request) -> Router:
    router: Router = request.app.state.serving.router
    if request.path_params["name"] != router.name:
        raise NotFoundError(f"unknown model {request.path_params['name']!r}")
    return router


def _slot(request: Request) -> Slot:
    """The slot a metadata or readiness request is about: the primary, or the version it names."""
    router = _router(request)
    version = request.path_params.get("version")
    if version is None:
        return router.primary
    slot = router.by_version(version)
    if slot is None:
        raise NotFoundError(f"{router.name} version {version} is not served here")
    return slot


async def model_metadata(request: Request) -> Response:
    router = _router(request)
    slot = _slot(request)
    versions = [s.version for s in (router.primary, router.canary, router.shadow) if s is not None]
    return JSONResponse(slot.served.metadata(versions), headers={"x-model-version": slot.version})


async def model_ready(request: Request) -> Response:
    _slot(request)
    return JSONResponse({"name": _router(request).name, "ready": True})


async def openapi(request: Request) -> Response:
    serving: Serving = request.app.state.serving
    return JSONResponse(document(serving.router.name))


async def prometheus(request: Request) -> Response:
    serving: Serving = request.app.state.serving
    return Response(generate_latest(serving.metrics.registry), media_type=CONTENT_TYPE_LATEST)

