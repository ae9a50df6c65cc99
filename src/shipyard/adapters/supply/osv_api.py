"""The OSV API (https://google.github.io/osv.dev/api/): ``POST /v1/querybatch`` for which advisories name each
package, then ``GET /v1/vulns/{id}`` for each advisory's details.

Every request is bounded: ``timeout`` seconds for the whole request, from connecting to the last byte of the
answer (a watchdog shuts the socket down at the deadline, so a server that trickles bytes or hangs is cut off
whatever it sends), and the whole query (every batch, page and advisory) within ``DEADLINE_FACTOR`` times that,
at most ``MAX_QUERY_SECONDS``; ``MAX_BATCH_BYTES``/``MAX_VULN_BYTES`` of body, at most ``MAX_QUERIES``
queries a batch and ``MAX_PAGES`` pages a package. An unreachable server, an HTTP error, an answer that is not
OSV's shape or a deadline passed is a ``BackendUnavailableError`` with one line saying why: the caller reports
"not checked", never "clean".
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shipyard.core.supply.osv import Finding, Package, check_advisory, is_osv_id, match, merge
from shipyard.errors import BackendUnavailableError, InvalidInputError

MAX_QUERIES = 1000  # OSV's own limit per querybatch
MAX_BATCH_BYTES = 32 * 1024 * 1024
MAX_VULN_BYTES = 8 * 1024 * 1024
MAX_PAGES = 20
MAX_VULNS = 20_000
FETCHERS = 8
DEADLINE_FACTOR = 10
MAX_QUERY_SECONDS = 300.0
_CHUNK = 65536


class _Watch:
    """The socket of one request, shut down by a timer at the request's deadline: a blocked read returns."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock: socket.socket | None = None
        self.expired = False

    def attach(self, sock: socket.socket) -> None:
        with self.lock:
            self.sock = sock
            if self.expired:
                raise TimeoutError("the request's deadline passed")

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            if self.sock is not None:
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)


def _watched(base: type[http.client.HTTPConnection], watch: _Watch, *args: Any,
             **kwargs: Any) -> http.client.HTTPConnection:
    class Connection(base):  # type: ignore[valid-type,misc]
        def connect(self) -> None:
            super().connect()
            watch.attach(self.sock)

    return Connection(*args, **kwargs)


class _HttpHandler(urllib.request.HTTPHandler):
    def __init__(self, watch: _Watch) -> None:
        super().__init__()
        self.watch = watch

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_watched, http.client.HTTPConnection, self.watch), req)


class _HttpsHandler(urllib.request.HTTPSHandler):
    def __init__(self, watch: _Watch) -> None:
        super().__init__()
        self.watch = watch

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_watched, http.client.HTTPSConnection, self.watch), req,
                            context=self._context)  # type: ignore[attr-defined]


class OsvApi:
    """The OSV source at ``url`` (``https://api.osv.dev``, or a mirror speaking the same API)."""

    def __init__(self, url: str, timeout: float) -> None:
        from shipyard.core.governance.config import check_osv_url

        url = url.rstrip("/")
        try:
            check_osv_url(url, "the OSV URL")
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from None
        self.url = url
        self.timeout = timeout
        self.budget = min(DEADLINE_FACTOR * timeout, MAX_QUERY_SECONDS)
        self.deadline = float("inf")

    @property
    def label(self) -> str:
        return self.url

    def scan(self, packages: Iterable[Package]) -> tuple[list[Finding], list[str]]:
        pkgs = sorted(set(packages), key=lambda p: (p.ecosystem, p.name, p.version))
        self.deadline = time.monotonic() + self.budget
        listed: dict[Package, set[str]] = {p: set() for p in pkgs}
        for start in range(0, len(pkgs), MAX_QUERIES):
            self._batch(pkgs[start:start + MAX_QUERIES], listed)
        ids = sorted({i for found in listed.values() for i in found})
        if len(ids) > MAX_VULNS:
            raise BackendUnavailableError(f"{self.url} named {len(ids)} advisories: more than {MAX_VULNS}")
        with ThreadPoolExecutor(max_workers=FETCHERS) as pool:
            docs = dict(zip(ids, pool.map(self._vuln, ids), strict=True))
        found = []
        for pkg, names in listed.items():
            for vid in sorted(names):
                finding = match(pkg, docs[vid], listed=True)
                if finding is not None:
                    found.append(finding)
        return merge(found), []

    def _batch(self, pkgs: list[Package], listed: dict[Package, set[str]]) -> None:
        pending: dict[int, str | None] = dict.fromkeys(range(len(pkgs)))  # query index -> page token
        for _ in range(MAX_PAGES):
            order = list(pending)
            queries = []
            for i in order:
                q: dict[str, Any] = {"package": {"name": pkgs[i].name, "ecosystem": pkgs[i].ecosystem},
                                     "version": pkgs[i].version}
                if pending[i]:
                    q["page_token"] = pending[i]
                queries.append(q)
            body = self._call("POST", "/v1/querybatch", {"queries": queries}, MAX_BATCH_BYTES)
            results = body.get("results")
            if not isinstance(results, list) or len(results) != len(queries):
                raise BackendUnavailableError(f"{self.url}/v1/querybatch answered {len(queries)} queries with "
                                              "something that is not OSV's results list")
            pending = {}
            for i, result in zip(order, results, strict=True):
                if not isinstance(result, dict):
                    raise BackendUnavailableError(f"{self.url}/v1/querybatch answered with a result that is not "
                                                  "an object")
                vulns = result.get("vulns") or []
                if not isinstance(vulns, list):
                    raise BackendUnavailableError(f"{self.url}/v1/querybatch: vulns is not a list")
                for v in vulns:
                    vid = v.get("id") if isinstance(v, dict) else None
                    if not is_osv_id(vid):
                        raise BackendUnavailableError(f"{self.url}/v1/querybatch named {str(vid)[:60]!r}, which is "
                                                      "not an OSV id")
                    listed[pkgs[i]].add(str(vid))
                token = result.get("next_page_token")
                if isinstance(token, str) and token and len(token) < 4096:
                    pending[i] = token
            if not pending:
                return
        raise BackendUnavailableError(f"{self.url} kept paging past {MAX_PAGES} pages")

    def _vuln(self, vid: str) -> dict[str, Any]:
        doc = self._call("GET", f"/v1/vulns/{vid}", None, MAX_VULN_BYTES)  # vid is a checked OSV id
        try:
            doc = check_advisory(doc)
        except ValueError as exc:
            raise BackendUnavailableError(f"{self.url}/v1/vulns/{vid} is not an OSV advisory ({exc})") from None
        if doc["id"] != vid and vid not in (doc.get("aliases") or []):
            raise BackendUnavailableError(f"{self.url}/v1/vulns/{vid} answered with {str(doc['id'])[:60]}")
        return doc

    def _call(self, method: str, path: str, body: Any, limit: int) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json",
                                              "User-Agent": "shipyard-scan"})
        where = self.url + path
        left = self.deadline - time.monotonic()
        overall = BackendUnavailableError(f"{self.url} did not answer the whole query within {self.budget:g} s "
                                          f"({DEADLINE_FACTOR} times scan.timeout, at most {MAX_QUERY_SECONDS:g} s)")
        if left <= 0:
            raise overall
        timeout = min(self.timeout, left)
        deadline = time.monotonic() + timeout
        watch = _Watch()
        # the environment's proxies apply (a team reaches the API through one), loopback excepted
        opener = urllib.request.build_opener(_HttpHandler(watch), _HttpsHandler(watch))
        timer = threading.Timer(timeout, watch.expire)
        timer.daemon = True
        timer.start()
        try:
            with opener.open(req, timeout=timeout) as resp:
                declared = resp.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise BackendUnavailableError(f"{where} answered {int(declared)} bytes, more than "
                                                  f"{limit // 1024 // 1024} MiB")
                raw = bytearray()
                while chunk := resp.read1(_CHUNK):
                    raw += chunk
                    if len(raw) > limit:
                        raise BackendUnavailableError(f"{where} answered more than {limit // 1024 // 1024} MiB")
                    if time.monotonic() > deadline:
                        raise TimeoutError
                if watch.expired:
                    raise TimeoutError
        except urllib.error.HTTPError as exc:
            raise BackendUnavailableError(f"{where} answered HTTP {exc.code} {str(exc.reason)[:80]}") from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            if watch.expired or isinstance(exc, TimeoutError) \
                    or isinstance(getattr(exc, "reason", None), TimeoutError):
                if timeout < self.timeout:  # cut short by the whole query's deadline
                    raise overall from None
                raise BackendUnavailableError(f"{where} did not finish answering within {timeout:g} s") from None
            if isinstance(exc, urllib.error.URLError):
                raise BackendUnavailableError(f"{self.url} cannot be reached ({str(exc.reason)[:120]})") from None
            # a reset connection, a bad status line
            raise BackendUnavailableError(f"{where} failed ({type(exc).__name__}: {str(exc)[:120]})") from None
        finally:
            timer.cancel()
        try:
            parsed = json.loads(raw)
        except (ValueError, RecursionError):
            raise BackendUnavailableError(f"{where} answered something that is not JSON") from None
        if not isinstance(parsed, dict):
            raise BackendUnavailableError(f"{where} answered JSON that is not an object")
        return parsed
