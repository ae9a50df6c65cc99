"""Adaptive micro-batching: requests that arrive while a predict call runs go together in the next.

No request ever waits for a timer: when the model is idle, a request's rows are predicted at once
(so latency at low load is unchanged); under load, everything queued while a call was running is
merged into one call (up to ``max_batch`` rows) and split back. A request that fills a batch by
itself is predicted alone. Every predict call runs in a worker thread, never on the event loop; a
caller that stops waiting (its request timed out) leaves the others' answers untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

DEFAULT_MAX_BATCH = 64


class Batcher:
    def __init__(self, predict: Callable[[list[list[Any]]], list[Any]], max_batch: int = DEFAULT_MAX_BATCH,
                 observe: Callable[[int], None] = lambda n: None) -> None:
        self._predict = predict
        self._max = max_batch
        self._observe = observe
        self._queue: list[tuple[list[list[Any]], asyncio.Future[list[Any]]]] = []
        self._running = False
        self._task: asyncio.Task[None] | None = None

    async def predict(self, rows: Any) -> list[Any]:
        if _count(rows) >= self._max and not self._running:
            # a request that fills a batch by itself gains nothing from waiting: answer it inline
            self._observe(_count(rows))
            return await asyncio.to_thread(self._predict, rows)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[Any]] = loop.create_future()
        self._queue.append((rows, fut))
        if not self._running:
            self._running = True
            self._task = loop.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch: list[tuple[list[list[Any]], asyncio.Future[list[Any]]]] = []
                rows = 0
                while self._queue and (not batch or rows + _count(self._queue[0][0]) <= self._max):
                    item = self._queue.pop(0)
                    if item[1].done():  # its caller gave up while it waited
                        continue
                    batch.append(item)
                    rows += _count(item[0])
                if not batch:
                    continue
                merged = _merge([item_rows for item_rows, _ in batch])
                try:
                    # one batch can hold rows of different widths only if a caller erred: then split
                    out = await asyncio.to_thread(self._predict, merged) if len(batch) > 1 else \
                        await asyncio.to_thread(self._predict, batch[0][0])
                except Exception as exc:
                    if len(batch) == 1:
                        _settle(batch[0][1], exc=exc)
                    else:
                        for item_rows, fut in batch:  # retry alone, so one bad input fails only itself
                            if fut.done():  # its caller gave up
                                continue
                            try:
                                _settle(fut, await asyncio.to_thread(self._predict, item_rows))
                            except Exception as alone:
                                _settle(fut, exc=alone)
                    continue
                self._observe(rows)
                start = 0
                for item_rows, fut in batch:
                    _settle(fut, out[start:start + _count(item_rows)])
                    start += _count(item_rows)
        finally:
            self._running = False


def _settle(fut: asyncio.Future[list[Any]], result: list[Any] | None = None, exc: Exception | None = None) -> None:
    """Answer a waiting caller; one that was cancelled (timed out) is skipped."""
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result if result is not None else [])


def _count(rows: Any) -> int:
    """Rows in a request: a sparse matrix has no ``len``."""
    shape = getattr(rows, "shape", None)
    return int(shape[0]) if shape else len(rows)


def _merge(parts: list[Any]) -> Any:
    """Rows of several requests as one: arrays are stacked, sparse matrices too, lists concatenated."""
    import numpy as np

    if all(hasattr(p, "tocsr") for p in parts):  # sparse rows (a sparse model's requests are all sparse)
        import scipy.sparse as sp  # type: ignore[import-untyped]

        try:
            return sp.vstack(parts, format="csr")
        except ValueError:  # widths differ: the predict call fails and each request is retried alone
            return parts[0]

    if all(isinstance(p, np.ndarray) for p in parts):
        try:
            return np.concatenate(parts)
        except ValueError:  # widths differ: the predict call fails and each request is retried alone
            return [r for p in parts for r in p.tolist()]
    return [r for p in parts for r in (p.tolist() if isinstance(p, np.ndarray) else p)]
