"""The model server: Open Inference Protocol v2 and plain JSON ``/predict`` over Starlette.

Built the way Starlette is: endpoints at module level (``endpoints``, ``inference``), metrics, API-key
auth and size limits as middleware (``middleware/``), and one table that maps each error class to its
HTTP status (``errors.STATUS``): malformed payloads get 400 with the field named, valid ones the model
cannot take 422, unknown models or versions 404, a model that raises 500 with the request id, and the
server keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from shipyard.errors import ConfigError
from shipyard.interfaces.serving import endpoints, inference
from shipyard.interfaces.serving.drift import LiveDrift
from shipyard.interfaces.serving.errors import HANDLERS
from shipyard.interfaces.serving.inference import Serving
from shipyard.interfaces.serving.logs import InferenceLog
from shipyard.interfaces.serving.middleware.auth import APIKeyMiddleware
from shipyard.interfaces.serving.middleware.limits import DEFAULT_TIMEOUT, MAX_BODY_BYTES, LimitsMiddleware
from shipyard.interfaces.serving.middleware.metrics import Metrics, MetricsMiddleware
from shipyard.interfaces.serving.quality import Comparisons, PredictionCounter
from shipyard.interfaces.serving.router import Router

__all__ = ["DEFAULT_PUBLIC", "MAX_BODY_BYTES", "PUBLIC_GROUPS", "Metrics", "create_app", "parse_public"]

ROUTES = [
    Route("/v2", endpoints.server_metadata),
    Route("/v2/health/live", endpoints.live),
    Route("/v2/health/ready", endpoints.ready),
    Route("/v2/models/{name}", endpoints.model_metadata),
    Route("/v2/models/{name}/ready", endpoints.model_ready),
    Route("/v2/models/{name}/versions/{version}", endpoints.model_metadata),
    Route("/v2/models/{name}/versions/{version}/ready", endpoints.model_ready),
    Route("/v2/models/{name}/infer", inference.infer, methods=["POST"]),
    Route("/v2/models/{name}/versions/{version}/infer", inference.infer, methods=["POST"]),
    Route("/predict", inference.predict, methods=["POST"]),
    Route("/metrics", endpoints.prometheus),
    Route("/openapi.json", endpoints.openapi),
]


# what ``--public`` can leave open when an API key is set; inference always needs the key
PUBLIC_GROUPS = {
    "health": re.compile(r"/v2/health/(live|ready)|/v2/models/[^/]+(/versions/[^/]+)?/ready"),
    "metrics": re.compile(r"/metrics"),
    "metadata": re.compile(r"/v2|/v2/models/[^/]+(/versions/[^/]+)?|/openapi\.json"),
}
DEFAULT_PUBLIC = frozenset({"health", "metrics"})


def parse_public(text: str) -> frozenset[str]:
    """``health,metrics`` as a set of group names; ``none`` (or nothing) for none."""
    names = frozenset(n.strip().lower() for n in text.split(",") if n.strip()) - {"none"}
    unknown = names - PUBLIC_GROUPS.keys()
    if unknown:
        raise ConfigError(f"--public {text!r}: unknown {', '.join(sorted(unknown))}; "
                          f"choose from {', '.join(PUBLIC_GROUPS)} (comma-separated), or none")
    return names


def public_paths(groups: frozenset[str]) -> Callable[[str], bool]:
    """Whether a path is open without the key: it belongs to one of ``groups``."""
    patterns = [PUBLIC_GROUPS[g] for g in sorted(groups)]
    return lambda path: any(p.fullmatch(path) for p in patterns)


def create_app(router: Router, max_body: int = MAX_BODY_BYTES, timeout: float = DEFAULT_TIMEOUT,
               background: Callable[[Router, Metrics], Coroutine[Any, Any, None]] | None = None,
               log: InferenceLog | None = None, api_key: str | Callable[[], str] | None = None,
               on_shutdown: Callable[[], None] | None = None,
               public: frozenset[str] = DEFAULT_PUBLIC, metrics: Metrics | None = None,
               drift: LiveDrift | None = None) -> Starlette:
    """A server for one model: its primary version, and optionally a canary and a shadow.

    ``max_body`` bytes is the most a request body may hold (counted as it streams); ``timeout``
    seconds is the most one request may take, from its head to its answer (504 past it);
    ``log`` receives a sampled record per inference request; ``api_key`` (a string, or a callable asked at
    each request: a rotated key is taken without a restart), when set, must come in
    an ``Authorization: Bearer KEY`` or ``x-api-key`` header on every request except those of the
    ``public`` groups (``PUBLIC_GROUPS``: health, metrics, metadata; inference is never public);
    ``background`` runs for the server's lifetime (it follows an alias); ``on_shutdown`` runs last.
    ``drift`` (built on ``metrics``) is handed the rows and answers of every answered request, the shadow's
    included; it counts them off the request path and writes its last sub-windows to ``log`` as the server stops.
    """
    metrics = metrics if metrics is not None else drift.metrics if drift is not None else Metrics()
    metrics.load_failures.labels(router.name)  # at 0 from the start: a first failure is an increase
    for slot in (router.primary, router.canary, router.shadow):
        if slot is not None:
            metrics.load_seconds.labels(slot.served.name, slot.version).set(slot.served.load_seconds)
            if slot.batcher is not None:
                slot.batcher._observe = metrics.batch.labels(slot.served.name, slot.version).observe

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(background(router, metrics)) if background else None
        if drift is not None:
            drift.start()
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if drift is not None:  # its current sub-windows go into the log before the log closes
                await asyncio.to_thread(drift.close)
            if log is not None:
                await asyncio.to_thread(log.close)
            if on_shutdown is not None:  # uvicorn re-raises SIGTERM after this: later code would not run
                await asyncio.to_thread(on_shutdown)

    # outermost first: metrics see every final status (a 413 or 504 included); limits close the
    # connection of any answer given before its body was read (a 401 included)
    middleware = [Middleware(MetricsMiddleware, metrics=metrics, log=log, count=PredictionCounter(metrics).count,
                             observe=drift.observe if drift is not None else None),
                  Middleware(LimitsMiddleware, max_body=max_body, timeout=timeout)]
    if api_key is not None:
        middleware.append(Middleware(APIKeyMiddleware, key=api_key, public=public_paths(public)))
    app = Starlette(routes=ROUTES, middleware=middleware, exception_handlers=HANDLERS, lifespan=lifespan)
    app.state.serving = Serving(router, metrics, Comparisons(metrics), drift)
    app.state.metrics = metrics
    return app
