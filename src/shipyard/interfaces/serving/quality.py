"""What the rollout analysis needs from the server besides errors and latency: the distribution of each
version's predictions (``shipyard_predictions_total``) and how often the canary's answers agree with the
primary's on the same rows (``shipyard_canary_comparisons_total``).

Both stay off the request path: predictions are counted once the answer has gone (at most
``MAX_COUNTED_ROWS`` rows of a request, evenly spread, so a big batch costs no more than a small one: the
rules compare shares, which a sample keeps), and the primary's
answer for a canary request is computed in the background, at most ``MAX_PENDING`` at a time; past that a
comparison is dropped and counted (``shipyard_canary_comparisons_dropped_total``), never queued.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from shipyard.core.serving.buckets import MAX_CLASSES, OTHER, bucket
from shipyard.core.serving.routing import agree
from shipyard.interfaces.serving.middleware.metrics import Metrics
from shipyard.interfaces.serving.router import Router, Slot

MAX_COUNTED_ROWS = 8
MAX_PENDING = 32


class PredictionCounter:
    """Counts each version's predictions by bucket, at most ``MAX_CLASSES`` classes per version."""

    def __init__(self, metrics: Metrics) -> None:
        self._counter = metrics.predictions
        self._classes: dict[tuple[str, str], set[str]] = {}
        self._children: dict[tuple[str, str, str], Any] = {}  # bounded, as the labels are

    def count(self, model: str, version: str, predictions: list[Any]) -> None:
        if len(predictions) == 1:
            self._child(model, version, self._label(model, version, predictions[0])).inc()
            return
        step = -(-len(predictions) // MAX_COUNTED_ROWS)
        seen = Counter(self._label(model, version, p) for p in predictions[::step])
        for label, n in seen.items():
            self._child(model, version, label).inc(n)

    def _child(self, model: str, version: str, label: str) -> Any:
        key = (model, version, label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._counter.labels(model, version, label)
        return child

    def _label(self, model: str, version: str, prediction: Any) -> str:
        label, is_class = bucket(prediction)
        if not is_class:
            return label
        classes = self._classes.setdefault((model, version), set())
        if label in classes:
            return label
        if len(classes) >= MAX_CLASSES:
            return OTHER
        classes.add(label)
        return label


class Comparisons:
    """For a request the canary answered: the primary's answer on the same rows, compared row by row."""

    def __init__(self, metrics: Metrics) -> None:
        self._counter = metrics.comparisons
        self._dropped = metrics.comparisons_dropped
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def compare(self, router: Router, canary: Slot, rows: Any, answers: list[Any]) -> None:
        model, version = router.name, canary.version
        if len(self._tasks) >= MAX_PENDING:
            self._dropped.labels(model, version).inc()
            return
        primary = router.primary

        async def run() -> None:
            try:
                expected = await primary.predict(rows)
            except Exception:
                self._counter.labels(model, version, "error").inc()
                return
            same = sum(1 for a, b in zip(answers, expected, strict=False) if agree(a, b))
            differ = max(len(answers), len(expected)) - same
            if same:
                self._counter.labels(model, version, "agree").inc(same)
            if differ:
                self._counter.labels(model, version, "disagree").inc(differ)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
