"""Live drift and data quality: what each served version sees, counted against its own reference profile.

The request path only hands (model, version, rows, predictions, time) to ``LiveDrift.observe``: a set lookup
and an append to a bounded deque, no lock and no numpy. Past the bound the rows are dropped and counted
(``shipyard_monitor_dropped_rows_total``), never waited for. A daemon thread drains the deque every
``DRAIN_SECONDS``, stacks the rows of many requests per version and counts them into the reference's bins in one
call (``count``: the adapter's ``count_rows``, through the wiring), adding them to the version's current
sub-window and to ``shipyard_monitored_rows_total`` and ``shipyard_data_quality_issues_total``.

The rolling window is a ring of sub-windows (``window / 12`` seconds, at least 1 s, on the clock's multiples of
that). At each tick the finished sub-window is written to the inference log as a drift-window record
(``Window.to_dict()``, never sampled) and the gauges are set from the ring's total, assessed against the
reference: windows add up, so the rolling window is the sum of its sub-windows. A feature with no value in the
window has no gauge value. Label values stay bounded: the reference's features (at most ``MAX_FEATURES``) and
the versions being served; a version no longer served loses its series.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.core.monitoring.config import DEFAULT_WINDOW
from shipyard.core.monitoring.drift import ISSUES, Baseline, Thresholds, Window, assess, total
from shipyard.interfaces.serving.model import count

if TYPE_CHECKING:
    from shipyard.interfaces.serving.logs import InferenceLog
    from shipyard.interfaces.serving.middleware.metrics import Metrics

log = logging.getLogger("shipyard.serve")

SUB_WINDOWS = 12  # sub-windows in the rolling window
MIN_SUB_WINDOW = 1.0  # seconds
DRAIN_SECONDS = 0.2  # how often the monitor's thread counts what requests handed in
MAX_PENDING_REQUESTS = 65_536  # requests handed in and not yet counted; past it they are dropped
MAX_PENDING_VALUES = 8_000_000  # values (rows x features) handed in and not yet counted: ~64 MB as floats
# (model, version, rows, predictions, start, end) -> the rows counted into the baseline's bins
Count = Callable[[Baseline, str, str, Any, Any, float, float], Window]
Key = tuple[str, str]
Entry = tuple[str, str, Any, list[Any], float]  # what a request hands in: model, version, rows, answers, time
DEFAULT_THRESHOLDS = Thresholds()


def sub_window(window: float) -> float:
    """Seconds of each sub-window of a ``window``-second rolling window."""
    return max(window / SUB_WINDOWS, MIN_SUB_WINDOW)


@dataclass
class _Watched:
    """One served version's reference, its current sub-window and the finished ones of the rolling window."""

    model: str
    version: str
    baseline: Baseline
    current: Window
    ring: deque[Window]
    rows: Any  # the version's shipyard_monitored_rows_total child
    quality: dict[tuple[str, str], Any] = field(default_factory=dict)  # (feature, issue) -> counter child
    shown: set[tuple[str, str, str]] = field(default_factory=set)  # (side, feature, statistic) with a gauge value


class LiveDrift:
    """The drift monitor of one server: ``watch`` a served version with its reference's ``Baseline``,
    ``observe`` each answered request, ``forget`` a version no longer served; ``start`` and ``close`` the
    thread that counts (``close`` writes the current sub-windows to the log)."""

    def __init__(self, metrics: Metrics, count: Count, window: float = DEFAULT_WINDOW,
                 thresholds: Thresholds = DEFAULT_THRESHOLDS, log: InferenceLog | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.window = window
        self.step = sub_window(window)
        self.slots = max(1, math.ceil(window / self.step - 1e-9))
        self.thresholds = thresholds
        self._count = count
        self._log = log
        self._clock = clock
        self._queue: deque[Entry] = deque()
        self._handed = 0  # values handed in: written by the request path only
        self._taken = 0  # values taken off the queue: written by the monitor's thread only
        self._watched: frozenset[Key] = frozenset()  # replaced whole, read without a lock by the request path
        self._states: dict[Key, _Watched] = {}
        self._dropped: dict[Key, Any] = {}
        self._lock = threading.Lock()  # between the monitor's thread and watch/forget/close, never a request
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._boundary = self._next_boundary(clock())
        self._failed = False

    # the request path

    def observe(self, model: str, version: str, rows: Any, predictions: list[Any], at: float) -> None:
        """Hand a request's rows and answers in; never blocks, drops (and counts) when the monitor is behind."""
        key = (model, version)
        if key not in self._watched:
            return
        size = getattr(rows, "size", None) or count(rows)
        if len(self._queue) >= MAX_PENDING_REQUESTS or self._handed - self._taken + size > MAX_PENDING_VALUES:
            dropped = self._dropped.get(key)
            if dropped is not None:
                dropped.inc(count(rows))
            return
        self._handed += size
        self._queue.append((model, version, rows, predictions, at))

    # which versions are watched

    def watch(self, model: str, version: str, baseline: Baseline) -> None:
        """Count what ``model`` version ``version`` sees against ``baseline`` (its reference) from now on."""
        key = (model, version)
        m = self.metrics
        with self._lock:
            if key in self._states:
                return
            now = self._clock()
            state = _Watched(model, version, baseline,
                             Window.empty(model, version, baseline, now, max(now, self._boundary)),
                             deque(maxlen=self.slots), m.monitored_rows.labels(model, version))
            for bins in baseline.inputs:  # every series a quality alert reads exists from the start, at 0
                issues = ("missing", "unseen") if bins.kind == "categorical" else ("missing", "out_of_range")
                for issue in issues:
                    state.quality[(bins.name, issue)] = m.quality.labels(model, version, bins.name, issue)
            self._dropped[key] = m.monitor_dropped.labels(model, version)
            m.window_rows.labels(model, version).set(0)
            self._states[key] = state
            self._watched = frozenset(self._states)

    def forget(self, model: str, version: str) -> None:
        """Stop watching a version no longer served: its current sub-window goes to the log, its series go."""
        key = (model, version)
        with self._lock:
            state = self._states.pop(key, None)
            self._watched = frozenset(self._states)
            if state is None:
                return
            self._drain()
            self._write(state.current, self._clock())
            self._dropped.pop(key, None)
            self._remove_series(state)

    def watching(self) -> frozenset[Key]:
        return self._watched

    # the monitor's thread

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="live-drift", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop counting: what was handed in is counted, and each current sub-window written to the log."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self._drain()
            now = self._clock()
            for state in self._states.values():
                self._write(state.current, now)
                state.current = Window.empty(state.model, state.version, state.baseline, now)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self._lock:
                    if self._clock() >= self._boundary:
                        self._tick()
                    else:
                        self._drain()
            except Exception as exc:  # the monitor never takes the server down; it says so once
                if not self._failed:
                    self._failed = True
                    log.warning("the drift monitor failed (%s: %s); it goes on", type(exc).__name__, exc)
            self._stop.wait(max(0.001, min(DRAIN_SECONDS, self._boundary - self._clock())))

    def _next_boundary(self, now: float) -> float:
        return (math.floor(now / self.step) + 1) * self.step

    def _tick(self) -> None:
        """Close every current sub-window at the boundary: log it, ring it, set the gauges from the ring."""
        boundary = self._boundary
        self._boundary = max(self._next_boundary(self._clock()), boundary + self.step)  # first: never ticks twice
        late = self._drain(before=boundary)
        for state in self._states.values():
            finished = state.current
            finished.end = boundary
            self._write(finished, boundary)
            state.ring.append(finished)
            state.current = Window.empty(state.model, state.version, state.baseline, boundary, self._boundary)
            self._show(state)
        if late:
            self._count_entries(late)

    def _drain(self, before: float | None = None) -> list[Entry]:
        """Count everything handed in so far into the current sub-windows; return what came at or after
        ``before`` (for the next sub-window)."""
        entries: list[Entry] = []
        late: list[Entry] = []
        queue = self._queue
        while queue:
            entry = queue.popleft()
            self._taken += getattr(entry[2], "size", None) or len(entry[2])
            (late if before is not None and entry[4] >= before else entries).append(entry)
        if entries:
            self._count_entries(entries)
        return late

    def _count_entries(self, entries: list[Entry]) -> None:
        import numpy as np

        groups: dict[tuple[str, str, int], tuple[list[Any], list[Any]]] = {}
        for model, version, rows, predictions, _ in entries:  # a batch per version and row width
            try:
                array = rows if isinstance(rows, np.ndarray) else np.asarray(rows, dtype=object)
            except ValueError:  # ragged: not rows of one width
                array = np.empty((len(rows), 0, 0), dtype=object)
            if array.ndim == 1:
                array = array.reshape(-1, 1)
            group = groups.setdefault((model, version, array.shape[1] if array.ndim == 2 else -1), ([], []))
            group[0].append(array)
            group[1].extend(predictions)
        for (model, version, width), (arrays, answers) in groups.items():
            state = self._states.get((model, version))
            if state is None:  # forgotten since it was handed in
                continue
            rows = sum(len(a) for a in arrays)
            try:
                if width < 0:
                    raise ValueError("rows of more than two dimensions")
                stacked = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
                counted = self._count(state.baseline, model, version, stacked, answers, state.current.start,
                                      state.current.end)
            except Exception as exc:  # rows this monitor cannot count: dropped and counted, said once
                self._dropped[(model, version)].inc(rows)
                if not self._failed:
                    self._failed = True
                    log.warning("drift of %s@%s: rows left uncounted (%s: %s)", model, version,
                                type(exc).__name__, exc)
                continue
            state.current.add(counted)
            state.rows.inc(counted.rows)
            for feature, counts in counted.inputs.items():
                for issue in ISSUES:
                    n = getattr(counts, issue)
                    if n:
                        child = state.quality.get((feature, issue))
                        if child is None:
                            child = state.quality[(feature, issue)] = self.metrics.quality.labels(
                                model, version, feature, issue)
                        child.inc(n)

    def _write(self, window: Window, end: float) -> None:
        if self._log is not None and window.rows:
            window.end = max(window.start, min(window.end, end))
            self._log.keep(window.to_dict())

    def _show(self, state: _Watched) -> None:
        """Set the version's gauges from the rolling window: its rows, and each feature's and output's drift."""
        m = self.metrics
        merged = total(state.ring)
        if merged is None:
            return
        m.window_rows.labels(state.model, state.version).set(merged.rows)
        for found in assess(state.baseline, merged, self.thresholds):
            gauge = m.drift if found.side == "inputs" else m.prediction_drift
            shown = (found.side, found.feature, found.statistic)
            if found.score is None:
                if shown in state.shown:
                    state.shown.discard(shown)
                    with suppress(KeyError):
                        gauge.remove(state.model, state.version, found.feature, found.statistic)
                continue
            gauge.labels(state.model, state.version, found.feature, found.statistic).set(found.score)
            state.shown.add(shown)

    def _remove_series(self, state: _Watched) -> None:
        m, model, version = self.metrics, state.model, state.version
        for side, feature, statistic in state.shown:
            with suppress(KeyError):
                (m.drift if side == "inputs" else m.prediction_drift).remove(model, version, feature, statistic)
        for feature, issue in state.quality:
            with suppress(KeyError):
                m.quality.remove(model, version, feature, issue)
        for metric in (m.window_rows, m.monitored_rows, m.monitor_dropped):
            with suppress(KeyError):
                metric.remove(model, version)
