"""Inference logs read back (pure): the drift windows and request records of one model version in a period.

A log is JSON lines written by ``shipyard serve`` (``interfaces/serving/logs.py``): request records
(``time``, ``model``, ``version``, ``latency_ms``, ``outcome``, with ``--log-payloads`` also ``inputs`` and
``outputs``) and the drift windows of the server's monitor (``Window.to_dict()``, ``kind: drift-window``). Every
line is untrusted: a line over ``MAX_LINE_BYTES``, one that is not JSON, or a record that does not hold what it
should is skipped and counted, never fatal; a window counted on other bins than the version's reference is
counted apart (it cannot be added up with the others).

Rows are never counted twice:

- a line seen before, byte for byte (the same file read from the store and from a copy), is a duplicate;
- a source (one server run, or one folder or file given) that logged drift windows for the version has its
  rows in them: its payloads are not counted again. A source without windows (a server run with ``--no-drift``,
  logs from elsewhere) has its payloads counted into windows by the ``count`` callback the caller passes in
  (numpy's work, in the adapter), one window per ``PAYLOAD_SPAN`` seconds.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from shipyard.core.monitoring.drift import WINDOW_KIND, Baseline, Window, finite
from shipyard.errors import InvalidInputError

MAX_LINE_BYTES = 1024 * 1024  # a logged request with its payload, or a window of 100 features, fits many times
MAX_FILE_BYTES = 64 * 1024 * 1024  # a log is rotated at 16 MiB
MAX_TOTAL_BYTES = 1024 * 1024 * 1024  # read over all the logs of one `shipyard monitor`
MAX_REQUESTS = 1_000_000  # request records kept for latency and errors
MAX_WINDOWS = 4096  # kept per source: past it, neighbours are added up two by two (a coarser time, the same sums)
PAYLOAD_SPAN = 60.0  # seconds of logged payloads counted into one window
MAX_HELD_VALUES = 200_000  # payload values held before they are counted into a window
SKEW = 60.0  # seconds a log's clock may run ahead of this one's and its records still count
OUTCOMES = ("ok", "error", "timeout", "rejected")
MAX_SINCE_DAYS = 366
_SINCE = re.compile(r"([1-9][0-9]{0,5})([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Count = Callable[[list[list[Any]], list[Any] | None, float, float], Window]


def parse_since(text: str) -> float:
    """``30m``, ``24h``, ``7d`` (or ``90s``) as seconds; anything else is refused in one line."""
    match = _SINCE.fullmatch(text.strip()) if isinstance(text, str) else None
    seconds = int(match[1]) * _UNIT[match[2]] if match else 0
    if not match or seconds > MAX_SINCE_DAYS * 86400:
        raise InvalidInputError(f"--since {str(text)[:40]!r} is not a period: write a number and a unit, like 30m, "
                                f"24h or 7d (at most {MAX_SINCE_DAYS}d)")
    return float(seconds)


@dataclass(frozen=True, slots=True)
class Period:
    """From ``start`` to ``end`` (Unix seconds); a record up to ``SKEW`` seconds after ``end`` still counts."""

    start: float
    end: float

    def holds(self, t: float) -> bool:
        return self.start <= t <= self.end + SKEW

    def overlaps(self, start: float, end: float) -> bool:
        return end >= self.start and start <= self.end + SKEW


@dataclass
class Requests:
    """The request records of the version: time, latency (ms) and outcome, in the order read."""

    times: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.times)

    def add(self, t: float, latency: float, outcome: str) -> None:
        self.times.append(t)
        self.latency_ms.append(latency)
        self.outcomes.append(outcome)


@dataclass
class Skipped:
    """Lines left out, by reason (shown to the user: what was not counted, and why)."""

    bad: int = 0  # too long, not JSON, or not a valid record or window
    torn: int = 0  # a last line still being written
    other_bins: int = 0  # windows of this version counted on another reference profile
    outside: int = 0  # records of this version outside the period
    duplicate: int = 0  # lines read before (the same log from two places)
    over_limit: int = 0  # request records past MAX_REQUESTS
    files: int = 0  # files not read: links, not regular, too large, over the total bound
    payload_rows: int = 0  # logged payload rows left uncounted: their source logged drift windows

    def to_dict(self) -> dict[str, int]:
        return {"bad_lines": self.bad, "torn_lines": self.torn, "windows_on_other_bins": self.other_bins,
                "outside_period": self.outside, "duplicate_lines": self.duplicate,
                "requests_over_limit": self.over_limit, "files_skipped": self.files,
                "payload_rows_in_windows": self.payload_rows}


@dataclass
class _Source:
    windows: list[Window] = field(default_factory=list)
    counted: list[Window] = field(default_factory=list)  # from payloads, used only when ``windows`` stays empty
    rows: list[list[Any]] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    with_outputs: bool = True
    has_windows: bool = False  # any window of the version on the baseline's bins, duplicate or not, in or out
    span: tuple[float, float] | None = None
    bucket: float | None = None
    values: int = 0


class LogReader:
    """Reads log contents source by source and keeps what belongs to ``model``/``version`` in ``period``."""

    def __init__(self, baseline: Baseline, model: str, version: str, period: Period, count: Count) -> None:
        self.baseline = baseline
        self.model, self.version = model, version
        self.period = period
        self.count = count
        self.windows: list[Window] = []
        self.requests = Requests()
        self.skipped = Skipped()
        self.payload_rows = 0  # rows counted from payloads (sources without windows)
        self.files = 0
        self.bytes = 0
        self._seen: set[int] = set()
        self._sources: dict[str, _Source] = {}

    def read(self, source: str, data: bytes) -> None:
        """One log file's bytes, of ``source`` (a server run's id, a folder or a file given)."""
        self.files += 1
        self.bytes += len(data)
        state = self._sources.setdefault(source, _Source())
        for line, last in _lines(data):
            entry = self._parse(line, last)
            if entry is not None:
                self._take(entry, line, state)
        self._flush(state)

    def finish(self) -> None:
        """Settle every source: its windows, or (when it logged none for the version) its counted payloads."""
        for state in self._sources.values():
            self._flush(state)
            if state.has_windows:
                self.windows.extend(state.windows)
                self.skipped.payload_rows += sum(w.rows for w in state.counted)
            else:
                self.windows.extend(state.counted)
                self.payload_rows += sum(w.rows for w in state.counted)
            state.windows, state.counted = [], []
        self.windows.sort(key=lambda w: (w.start, w.end))

    def _parse(self, line: bytes, last: bool) -> dict[str, Any] | None:
        if len(line) > MAX_LINE_BYTES:
            self.skipped.bad += 1
            return None
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):
            if last:
                self.skipped.torn += 1  # the line a server is still writing
            else:
                self.skipped.bad += 1
            return None
        if not isinstance(entry, dict):
            self.skipped.bad += 1
            return None
        return entry

    def _take(self, entry: dict[str, Any], line: bytes, state: _Source) -> None:
        if entry.get("model") != self.model or str(entry.get("version")) != self.version:
            return  # another model's or version's record: not ours to judge
        if entry.get("kind") == WINDOW_KIND and entry.get("profile") == self.baseline.profile:
            state.has_windows = True  # its rows are in windows: its payloads are never counted again
        key = int.from_bytes(hashlib.blake2b(line, digest_size=8).digest(), "big")
        if key in self._seen:
            self.skipped.duplicate += 1
            return
        self._seen.add(key)
        if entry.get("kind") == WINDOW_KIND:
            self._window(entry, state)
        elif "kind" in entry:
            self.skipped.bad += 1
        else:
            self._request(entry, state)

    def _window(self, entry: dict[str, Any], state: _Source) -> None:
        if entry.get("profile") != self.baseline.profile:
            self.skipped.other_bins += 1
            return
        try:
            window = Window.from_dict(entry, self.baseline)
        except InvalidInputError:
            self.skipped.bad += 1
            return
        if window.end < window.start:
            self.skipped.bad += 1
        elif not self.period.overlaps(window.start, window.end):
            self.skipped.outside += 1
        else:
            state.windows.append(window)
            if len(state.windows) > MAX_WINDOWS:
                state.windows = _halved(state.windows)

    def _request(self, entry: dict[str, Any], state: _Source) -> None:
        t, latency, outcome = entry.get("time"), entry.get("latency_ms"), entry.get("outcome")
        if not (_number(t) and _number(latency) and outcome in OUTCOMES) or latency < 0:
            self.skipped.bad += 1
            return
        t, latency = float(t), float(latency)
        if not self.period.holds(t):
            self.skipped.outside += 1
            return
        if len(self.requests) >= MAX_REQUESTS:
            self.skipped.over_limit += 1
        else:
            self.requests.add(t, latency, str(outcome))
        if outcome == "ok" and "inputs" in entry:
            self._payload(entry, t, state)

    def _payload(self, entry: dict[str, Any], t: float, state: _Source) -> None:
        rows = _rows(entry.get("inputs"), len(self.baseline.inputs))
        if rows is None:
            self.skipped.bad += 1
            return
        outputs = _outputs(entry.get("outputs"), len(rows), len(self.baseline.outputs))
        bucket = math.floor(t / PAYLOAD_SPAN)
        if state.bucket is not None and bucket != state.bucket:
            self._flush(state)
        state.bucket = bucket
        state.span = (min(state.span[0], t), max(state.span[1], t)) if state.span else (t, t)
        state.rows.extend(rows)
        if outputs is None:
            state.with_outputs = False
        else:
            state.outputs.extend(outputs)
        state.values += len(rows) * max(1, len(self.baseline.inputs))
        if state.values >= MAX_HELD_VALUES:
            self._flush(state)

    def _flush(self, state: _Source) -> None:
        if state.rows and state.span is not None:
            outputs = state.outputs if state.with_outputs and len(state.outputs) == len(state.rows) else None
            state.counted.append(self.count(state.rows, outputs, *state.span))
            if len(state.counted) > MAX_WINDOWS:
                state.counted = _halved(state.counted)
        state.rows, state.outputs, state.with_outputs = [], [], True
        state.span, state.bucket, state.values = None, None, 0


def _halved(windows: list[Window]) -> list[Window]:
    """``windows`` in time order with each pair of neighbours added up: half as many, the same rows."""
    ordered = sorted(windows, key=lambda w: (w.start, w.end))
    for first, second in zip(ordered[::2], ordered[1::2], strict=False):
        first.add(second)
    return ordered[::2]


def _lines(data: bytes) -> Iterator[tuple[bytes, bool]]:
    """The non-empty lines of ``data``; the flag marks a last line with no line break (maybe torn)."""
    start, size = 0, len(data)
    while start < size:
        end = data.find(b"\n", start)
        last = end < 0
        line = data[start:] if last else data[start:end]
        start = size if last else end + 1
        if line.strip():
            yield line, last


def _number(value: Any) -> TypeGuard[float]:
    return finite(value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool)) or _number(value)


def _rows(inputs: Any, width: int) -> list[list[Any]] | None:
    """A request's rows, each cut to the reference's ``width`` columns; None when they are not rows of scalars
    at least that wide."""
    if not isinstance(inputs, list) or not inputs or width < 1:
        return None
    rows = []
    for row in inputs:
        if not isinstance(row, list) or len(row) < width or not all(_scalar(v) for v in row[:width]):
            return None
        rows.append(row[:width])
    return rows


def _outputs(outputs: Any, rows: int, width: int) -> list[Any] | None:
    """A request's answers, one per row: a scalar (one output) or the first ``width`` of a list; None when they
    do not fit the reference's outputs."""
    if width < 1 or not isinstance(outputs, list) or len(outputs) != rows:
        return None
    if width == 1:
        flat = [o[0] if isinstance(o, list) and len(o) == 1 else o for o in outputs]
        return flat if all(_scalar(o) for o in flat) else None
    if all(isinstance(o, list) and len(o) >= width and all(_scalar(v) for v in o[:width]) for o in outputs):
        return [o[:width] for o in outputs]
    return None
