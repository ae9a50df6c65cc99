"""Prometheus metrics and the inference log, recorded once per inference request as it finishes.

An endpoint that has picked the version to answer puts an ``Observation`` in the request state; this
middleware counts the request by its final status (so a 413 or a 504 raised anywhere below is counted
too) and hands a sampled record to the inference log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard.interfaces.serving.logs import InferenceLog
from shipyard.interfaces.serving.model import rows_json

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
OBSERVED = "shipyard.observed"


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
        self.predictions = Counter("shipyard_predictions", "Predictions by bucket (a class, or a value range)",
                                   [*labels, "bucket"], registry=r)
        self.comparisons = Counter("shipyard_canary_comparisons",
                                   "Canary predictions compared with the primary's on the same rows",
                                   [*labels, "result"], registry=r)
        self.comparisons_dropped = Counter("shipyard_canary_comparisons_dropped",
                                           "Canary requests left uncompared: too many comparisons pending",
                                           labels, registry=r)
        self.swaps = Counter("shipyard_model_swaps", "Primary version changes after an alias moved", ["model"],
                             registry=r)
        self.load_failures = Counter("shipyard_model_load_failures",
                                     "Versions an alias moved to that could not be loaded, verified or admitted",
                                     ["model"], registry=r)
        # live drift (interfaces/serving/drift.py): over the rolling window, against the version's reference
        self.drift = Gauge("shipyard_feature_drift", "Drift of an input feature from the reference over the "
                           "window (statistic: psi for numbers, js for categories)",
                           [*labels, "feature", "statistic"], registry=r)
        self.prediction_drift = Gauge("shipyard_prediction_drift", "Drift of the model's outputs from its answers "
                                      "on the reference over the window", [*labels, "output", "statistic"],
                                      registry=r)
        self.window_rows = Gauge("shipyard_drift_window_rows", "Rows in the drift window", labels, registry=r)
        self.monitored_rows = Counter("shipyard_monitored_rows", "Rows counted against the reference", labels,
                                      registry=r)
        self.quality = Counter("shipyard_data_quality_issues", "Input values missing, outside the reference's "
                               "range, or categories the reference never had", [*labels, "feature", "issue"],
                               registry=r)
        self.monitor_dropped = Counter("shipyard_monitor_dropped_rows", "Rows left uncounted: the drift "
                                       "monitor fell behind", labels, registry=r)


@dataclass
class Observation:
    """What an inference endpoint learned about its request: the version it picked, the rows, the answer."""

    model: str
    version: str
    request_id: str
    rows: Any = None
    predictions: list[Any] | None = None


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status == 504:
        return "timeout"
    return "error" if status >= 500 else "rejected"


# (model, version, rows, predictions, time): the drift monitor's intake (``drift.LiveDrift.observe``)
Observe = Callable[[str, str, Any, list[Any], float], None]


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, log: InferenceLog | None = None,
                 count: Callable[[str, str, list[Any]], None] | None = None, observe: Observe | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log
        self.count = count  # counts the predictions of an answered request by bucket
        self.observe = observe  # hands an answered request's rows to the drift monitor (a queue append)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":  # only inference requests are POSTs
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, watch)
        finally:
            self.metrics.in_flight.dec()
            seen: Observation | None = state.get(OBSERVED)
            if seen is not None:
                self._record(seen, outcome_of(status), time.perf_counter() - start)

    def _record(self, seen: Observation, outcome: str, took: float) -> None:
        self.metrics.requests.labels(seen.model, seen.version, outcome).inc()
        self.metrics.latency.labels(seen.model, seen.version).observe(took)
        if outcome == "ok" and seen.predictions:
            if self.count is not None:
                self.count(seen.model, seen.version, seen.predictions)
            if self.observe is not None:
                self.observe(seen.model, seen.version, seen.rows, seen.predictions, time.time())
        log = self.log
        if log is not None and log.wants():
            entry: dict[str, Any] = {"request_id": seen.request_id, "time": time.time(), "model": seen.model,
                                     "version": seen.version, "latency_ms": round(took * 1000, 3),
                                     "outcome": outcome}
            if log.with_payloads:
                entry["inputs"] = rows_json(seen.rows)
                entry["outputs"] = seen.predictions
            log.record(entry)
