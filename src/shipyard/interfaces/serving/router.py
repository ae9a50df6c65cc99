"""Which loaded version answers a request: primary, a sticky canary share, a shadow that only listens."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shipyard.core.serving.routing import in_canary
from shipyard.interfaces.serving.batching import Batcher
from shipyard.interfaces.serving.model import ServedModel


@dataclass
class Slot:
    """A loaded version, with its batcher when the flavor takes batches."""

    served: ServedModel
    batcher: Batcher | None = None

    @property
    def version(self) -> str:
        return str(self.served.version.version)

    async def predict(self, rows: Any) -> list[Any]:
        """The model's answer for ``rows``, computed in a worker thread: the event loop keeps serving."""
        if self.batcher is not None:
            return await self.batcher.predict(rows)
        return await asyncio.to_thread(self.served.predict_rows, rows)


@dataclass
class Router:
    primary: Slot
    canary: Slot | None = None
    canary_percent: float = 0.0
    shadow: Slot | None = None
    sticky_header: str = "x-request-id"
    swaps: int = 0
    _shadow_tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.primary.served.name

    def pick(self, key: str) -> Slot:
        canary = self.canary
        if canary is not None and in_canary(key, self.canary_percent):
            return canary
        return self.primary

    def by_version(self, version: str) -> Slot | None:
        for slot in (self.primary, self.canary, self.shadow):
            if slot is not None and slot.version == version:
                return slot
        return None

    def swap(self, slot: Slot) -> None:
        """Make ``slot`` the primary; requests already running keep the slot they picked."""
        self.primary = slot
        self.swaps += 1

    def mirror(self, rows: list[list[Any]], primary_out: list[Any],
               record: Callable[[str, list[Any] | None], None]) -> None:
        """Send ``rows`` to the shadow in the background; its answer is only compared and recorded."""
        shadow = self.shadow
        if shadow is None:
            return

        async def run() -> None:
            try:
                out = await shadow.predict(rows)
            except Exception:
                record("error", None)
                return
            record("compared", out)

        task = asyncio.get_running_loop().create_task(run())
        self._shadow_tasks.add(task)
        task.add_done_callback(self._shadow_tasks.discard)
