"""Load versions for serving, warm them on their golden examples, and follow an alias as it moves."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shipyard.core.registry.refs import ModelRef
from shipyard.errors import InvalidInputError, ShipyardError
from shipyard.interfaces.serving.batching import Batcher
from shipyard.interfaces.serving.model import ServedModel
from shipyard.interfaces.serving.router import Router, Slot

if TYPE_CHECKING:
    from shipyard.core.monitoring.drift import Baseline
    from shipyard.core.registry.records import ModelVersion
    from shipyard.core.registry.service import Registry
    from shipyard.interfaces.serving.app import Metrics
    from shipyard.interfaces.serving.drift import LiveDrift

log = logging.getLogger("shipyard.serve")


def failure(exc: BaseException) -> str:
    """``exc`` as one short line: its class and the first line of its message."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200]}" if text else type(exc).__name__


def load_slot(registry: Registry, version: ModelVersion, batching: bool = True, max_batch: int = 64) -> Slot:
    """Load ``version`` (its files re-hashed first) and warm it on its golden examples (``warm``)."""
    served = load_served(registry, version)
    warm(registry, served)
    return slot_of(served, batching, max_batch)


def load_served(registry: Registry, version: ModelVersion) -> ServedModel:
    start = time.perf_counter()
    model = registry.load(f"{version.model}@{version.version}")
    return ServedModel(version, registry.flavors(version.flavor), model, time.perf_counter() - start)


def warm(registry: Registry, served: ServedModel) -> None:
    """Predict ``served``'s golden examples once, so that the first real request pays no first-call costs; a
    version that raises on them cannot serve: an InvalidInputError naming it and the error, in one line."""
    golden = registry.examples(served.version)
    if golden is None:
        return
    try:
        served.predict_rows(served.from_json(golden["inputs"]))
    except (Exception, SystemExit) as exc:  # the model's own code: whatever it raises (even exit) is its failure
        raise InvalidInputError(f"{served.version.ref} fails on its golden examples: {failure(exc)}") from None


def slot_of(served: ServedModel, batching: bool = True, max_batch: int = 64) -> Slot:
    return Slot(served, Batcher(served.predict_rows, max_batch) if batching else None)


def follower(registry: Registry, ref: str, poll_seconds: float, batching: bool, max_batch: int,
             check: Callable[[ModelVersion], None] = lambda _: None, drift: LiveDrift | None = None,
             reference: Callable[[ModelVersion], Baseline | str] | None = None) -> Any:
    """A background task that moves the primary when ``ref``'s alias moves (after ``check``, loading and
    warming; ``check`` raising a ShipyardError, as ``require_signature`` does, keeps the version served and counts
    a load failure). With ``drift``, the old primary stops being watched and the new one is watched against its
    reference (``reference``: its baseline, or the line that says why its drift is not measured)."""
    alias = ModelRef.parse(ref)

    async def follow(router: Router, metrics: Metrics) -> None:
        refused: tuple[str, str] | None = None  # the last refusal said: said once, not at every poll
        while True:
            await asyncio.sleep(poll_seconds)
            current: ModelVersion | None = None
            try:
                current = await asyncio.to_thread(registry.resolve, alias)
                if str(current.version) == router.primary.version:
                    continue
                await asyncio.to_thread(check, current)
                slot = await asyncio.to_thread(load_slot, registry, current, batching, max_batch)
            except ShipyardError as exc:
                said = (router.primary.version, str(exc))
                if said != refused:
                    log.warning("keeping %s: %s", router.primary.served.version.ref, exc)
                    if current is not None:  # the alias moved to a version that cannot serve (counted once)
                        metrics.load_failures.labels(router.name).inc()
                    refused = said
                continue
            refused = None
            found = await asyncio.to_thread(reference, current) if drift is not None and reference else None
            metrics.load_seconds.labels(router.name, slot.version).set(slot.served.load_seconds)
            if slot.batcher is not None:
                slot.batcher._observe = metrics.batch.labels(router.name, slot.version).observe
            old = router.primary.version
            router.swap(slot)
            metrics.swaps.labels(router.name).inc()
            log.warning("%s now answers with version %s", ref, slot.version)
            if drift is not None:
                await asyncio.to_thread(rewatch, drift, router, old, found)

    return follow


def rewatch(drift: LiveDrift, router: Router, old: str, found: Baseline | str | None) -> None:
    """After a swap: ``old`` is forgotten unless it still serves (as the canary or the shadow); the new primary is
    watched against ``found``, or the reason its drift is not measured is said."""
    if router.by_version(old) is None:
        drift.forget(router.name, old)
    if isinstance(found, str):
        log.warning("%s", found)
    elif found is not None:
        drift.watch(router.name, router.primary.version, found)
