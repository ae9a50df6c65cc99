"""A progressive rollout on one machine: the model server in this process (stable primary, the new version
as canary at weight 0), the analysis taken from its own /metrics every interval, the weight set from the
step machine's answer (``core.deploy.rollout``). Traffic comes from outside, or from ``Traffic``: rows sent
to /predict at a steady rate (recorded inference logs with ``replay_rows``).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.deploy.config import AnalysisSpec
from shipyard.core.deploy.measure import Measurement, evaluate, parse_scrape, requests
from shipyard.core.deploy.rollout import Plan, State, advance, start
from shipyard.errors import InvalidInputError
from shipyard.interfaces.serving.app import create_app
from shipyard.interfaces.serving.loading import load_served, load_slot, slot_of, warm
from shipyard.interfaces.serving.middleware.limits import DEFAULT_TIMEOUT
from shipyard.interfaces.serving.router import Router

if TYPE_CHECKING:
    from shipyard.core.registry.records import ModelVersion
    from shipyard.core.registry.service import Registry

MAX_METRICS_BYTES = 16 * 1024 * 1024
SENDERS = 32  # concurrent replay senders
MAX_REPLAY_BYTES = 64 * 1024 * 1024  # read from the replayed logs, all of them together
MAX_REPLAY_ROWS = 100_000
MAX_REPLAY_VALUES = 2_000_000  # values (a row's leaves) kept in all: what the replay holds in memory
MAX_ROW_VALUES = 100_000
MAX_LINE_VALUES = 1_000_000  # commas on one log line, counted before it is parsed
MAX_DEPTH = 32  # nested lists in a row
MAX_LINE_BYTES = 1024 * 1024  # one logged request: a string or a dict in it is one value, so bytes bound it too


@dataclass(frozen=True)
class Tick:
    """What the rollout did at one interval, for a progress view."""

    elapsed: float
    state: State
    measured: tuple[Measurement, ...]
    requests: float = 0.0  # to either version in the interval


@dataclass
class LocalServer:
    """The model server on ``host:port`` in a thread of this process, with its router at hand."""

    router: Router
    host: str = "127.0.0.1"
    port: int = 0
    timeout: float = DEFAULT_TIMEOUT  # a request not answered within it: 504, counted as a timeout
    _server: Any = None
    _thread: threading.Thread | None = None

    def __enter__(self) -> LocalServer:
        import socket

        import uvicorn

        if not self.port:
            with socket.socket() as s:
                s.bind((self.host, 0))
                self.port = s.getsockname()[1]
        app = create_app(self.router, timeout=self.timeout)
        self._server = uvicorn.Server(uvicorn.Config(app, host=self.host, port=self.port, log_level="critical"))
        self._thread = threading.Thread(target=self._server.run, name="rollout-server", daemon=True)
        self._thread.start()
        while not self._server.started:
            if not self._thread.is_alive():
                raise InvalidInputError(f"the model server could not start on {self.host}:{self.port} "
                                        "(is the port taken? choose another with --port)")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def scrape(self) -> str:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            body = conn.getresponse().read(MAX_METRICS_BYTES + 1)
        finally:
            conn.close()
        if len(body) > MAX_METRICS_BYTES:
            raise InvalidInputError(f"the server's /metrics is over {MAX_METRICS_BYTES} bytes")
        return body.decode()


@dataclass
class Traffic:
    """Sends ``batches`` (each a list of rows) to /predict in turn, ``rate`` requests a second, until stopped, from
    ``SENDERS`` threads: a slow answer holds one of them, not the traffic to the other version. A request gets
    ``timeout`` seconds (the server's own, and a little more): the server answers one slower than its own with a
    504, which its metrics count as a timeout of the version that took it."""

    port: int
    batches: Sequence[list[Any]]
    rate: float = 200.0
    host: str = "127.0.0.1"
    timeout: float = DEFAULT_TIMEOUT + 2.0
    sent: int = 0
    failed: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    _due: float = 0.0
    _next: int = 0

    def __enter__(self) -> Traffic:
        if not self.batches:
            raise InvalidInputError("no rows to send: the replayed logs hold no inputs")
        self._due = time.monotonic()
        for n in range(SENDERS):
            thread = threading.Thread(target=self._run, name=f"rollout-traffic-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        end = time.monotonic() + 1.0
        for thread in self._threads:  # daemons: one still waiting on a slow answer is left to end with it
            thread.join(timeout=max(0.0, end - time.monotonic()))

    def _slot(self) -> tuple[int, float]:
        """The next request's index and when it is due (not earlier than a second ago: no burst to catch up)."""
        with self._lock:
            now = time.monotonic()
            self._due = max(self._due + 1.0 / self.rate, now - 1.0)
            self._next += 1
            return self._next - 1, self._due

    def _run(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        while not self._stop.is_set():
            i, due = self._slot()
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            body = json.dumps({"instances": self.batches[i % len(self.batches)]})
            try:
                conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                with self._lock:
                    self.sent += 1
                    self.failed += response.status >= 500
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                with self._lock:
                    self.failed += 1
        conn.close()


def replay_rows(path: Path) -> list[list[Any]]:
    """The inputs recorded in inference logs (``shipyard serve --log --log-payloads``): a .jsonl file, or a
    folder of them; one batch per logged request, at most ``MAX_REPLAY_ROWS`` rows in all."""
    files = sorted(path.rglob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise InvalidInputError(f"--replay {path}: no .jsonl inference logs there")

    def read(file: Path) -> bytes:
        try:
            with file.open("rb") as f:
                return f.read(MAX_REPLAY_BYTES + 1)
        except OSError as exc:
            raise InvalidInputError(f"--replay: cannot read {file}: {exc}") from exc

    return logged_rows((read(f) for f in files), f"--replay {path}")


def logged_rows(logs: Iterable[bytes], what: str) -> list[list[Any]]:
    """The request inputs in inference log contents (JSON lines), bounded: ``MAX_REPLAY_BYTES`` read over all the
    logs (a log is read up to its last whole line there, and later ones not at all), at most ``MAX_REPLAY_ROWS``
    rows and ``MAX_REPLAY_VALUES`` values in all; a request of over ``MAX_ROW_VALUES`` values in a row, or nested
    deeper than ``MAX_DEPTH``, is refused in one line."""
    batches: list[list[Any]] = []
    rows = values = read = 0
    for data in logs:
        full = read + len(data) >= MAX_REPLAY_BYTES
        if full:
            data = data[:data.rfind(b"\n", 0, MAX_REPLAY_BYTES - read) + 1]  # whole lines only
        read += len(data)
        for number, line in enumerate(data.splitlines(), 1):
            if line.count(b",") > MAX_LINE_VALUES:  # said before parsing it: its values would take the memory
                raise InvalidInputError(f"{what}: a logged request (line {number}) holds over {MAX_LINE_VALUES} "
                                        "values; replay logs of smaller requests")
            if len(line) > MAX_LINE_BYTES:  # said before parsing it: a long string or a big dict is one "value"
                raise InvalidInputError(f"{what}: a logged request (line {number}) is over {MAX_LINE_BYTES} bytes; "
                                        "replay logs of smaller requests")
            try:
                entry = json.loads(line)
            except RecursionError:
                raise InvalidInputError(f"{what}: a logged request (line {number}) is nested deeper than "
                                        f"{MAX_DEPTH} lists; replay other logs") from None
            except ValueError:
                continue  # a torn last line of a log that was being written
            inputs = entry.get("inputs") if isinstance(entry, dict) else None
            if isinstance(inputs, list) and inputs and all(isinstance(r, list) for r in inputs):
                values += sum(_width(row, f"{what}: a logged request (line {number})") for row in inputs)
                if values > MAX_REPLAY_VALUES:
                    break
                batches.append(inputs)
                rows += len(inputs)
                if rows >= MAX_REPLAY_ROWS:
                    return batches
        if full or values > MAX_REPLAY_VALUES:
            break
    if not batches:
        raise InvalidInputError(f"{what}: the logs hold no inputs; record them with "
                                "`shipyard serve --log --log-payloads`")
    return batches


def _width(row: list[Any], what: str) -> int:
    """The values in ``row`` (its leaves), refusing a row over ``MAX_ROW_VALUES`` values or ``MAX_DEPTH`` deep."""
    count, stack = 0, [(row, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidInputError(f"{what} is nested deeper than {MAX_DEPTH} lists; replay other logs")
        for v in item:
            if isinstance(v, list):
                stack.append((v, depth + 1))
            else:
                count += 1
        if count > MAX_ROW_VALUES:
            raise InvalidInputError(f"{what} has a row of over {MAX_ROW_VALUES} values; replay logs of smaller "
                                    "requests")
    return count


def run_rollout(registry: Registry, new: ModelVersion, stable: ModelVersion, plan: Plan, spec: AnalysisSpec,
                port: int = 0, host: str = "127.0.0.1", traffic: Sequence[list[Any]] | None = None,
                rate: float = 200.0, on_tick: Callable[[Tick], None] = lambda tick: None,
                on_ready: Callable[[int], None] = lambda port: None) -> State:
    """Run the rollout of ``new`` against ``stable`` to its verdict; the weight ends at 0 or 100. A new version
    that raises on its golden examples is rolled back before it takes any traffic, with that reason."""
    primary = load_slot(registry, stable)
    served = load_served(registry, new)
    try:
        warm(registry, served)
    except InvalidInputError as exc:
        return State(step=0, weight=0, status="rolled back", why=str(exc))
    router = Router(primary, canary=slot_of(served), canary_percent=0.0)
    timeout = request_timeout(plan)
    with LocalServer(router, host, port, timeout) as server, \
            (Traffic(server.port, traffic, rate, host, timeout + 2.0) if traffic else contextlib.nullcontext()):
        on_ready(server.port)
        return drive(server, router, new, stable, plan, spec, on_tick)


def request_timeout(plan: Plan) -> float:
    """The local server's request timeout: one analysis interval (1 s to the server's default, 30 s), so that a
    version that hangs fails the error-rate rule within the analysis rather than starving it of answers."""
    return min(DEFAULT_TIMEOUT, max(1.0, plan.interval_s))


def drive(server: LocalServer, router: Router, new: ModelVersion, stable: ModelVersion, plan: Plan,
          spec: AnalysisSpec, on_tick: Callable[[Tick], None]) -> State:
    state = start(plan)
    router.canary_percent = float(state.weight)
    began = time.monotonic()
    on_tick(Tick(0.0, state, ()))
    before = parse_scrape(server.scrape())
    due = began
    while not state.done:
        due += plan.interval_s
        time.sleep(max(0.0, due - time.monotonic()))
        after = parse_scrape(server.scrape())
        measured = evaluate(before, after, new.model, str(new.version), str(stable.version), spec) \
            if state.weight > 0 else ()
        served = requests(before, after, new.model, str(new.version), str(stable.version))
        before = after
        state = advance(plan, state, measured)
        router.canary_percent = float(state.weight)
        on_tick(Tick(time.monotonic() - began, state, measured, served))
    return state


def conclude(registry: Registry, new: ModelVersion, stable: ModelVersion, state: State, alias: str | None,
             detail: dict[str, Any]) -> str:
    """Record the verdict on ``new`` (``models history`` shows it) and, when promoted, move ``alias`` to it;
    the summary recorded."""
    from shipyard.core.registry.records import ROLLOUT_ACTION

    failed = next((m for m in state.last if m.verdict == "fail"), None) if state.status == "rolled back" else None
    if state.status == "promoted":
        summary = f"promoted from {stable.ref}" + (f"; {new.model}@{alias} -> {new.ref}" if alias else "")
    else:
        summary = f"{state.status}: {state.why}; stable {stable.ref}"
    record = {"from": stable.ref, "status": state.status, "why": state.why, "alias": alias,
              "failed": failed.to_dict() if failed else None,
              "measurements": [m.to_dict() for m in state.last], **detail}
    registry.record_result(new, ROLLOUT_ACTION, record, summary)
    if state.status == "promoted" and alias:
        registry.set_alias(new.model, alias, new.version, reason=f"rollout from {stable.ref}: every step passed")
    return summary
