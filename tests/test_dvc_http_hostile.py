"""A DVC HTTP remote that is hostile or misconfigured, without DVC itself: a URL with a token in its query, a reason
phrase with escape sequences, and a folder whose files are streamed past the size DVC recorded for it (DVC 3's
``.dir`` listings hold no sizes). A loopback server per test, in-process."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from shipyard.adapters.remotes import open_remote
from shipyard.adapters.remotes.dvc_http import DvcHttpRemote
from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.core.artifacts.digest import Digest
from shipyard.core.project.model import Remote as RemoteSpec
from shipyard.core.workspace.lockfile import PathEntry, load_lock
from shipyard.errors import BackendUnavailableError, ConfigError
from shipyard.wiring.from_dvc import convert
from tests.conftest import cli_env
from tests.conftest import shipyard as run_shipyard

FILES = {"a.txt": b"A" * 10, "b.txt": b"B" * 20}
LISTING = json.dumps([{"md5": hashlib.md5(v).hexdigest(), "relpath": k} for k, v in FILES.items()]).encode()
LISTING_MD5 = hashlib.md5(LISTING).hexdigest()
FLOOD = 16 * 1024 * 1024  # what the server sends for a file (no Content-Length): far past the folder's 30 bytes


class _Hostile(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    sent: list[int] = []

    def log_message(self, *args: object) -> None:  # type: ignore[override]
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/missing/"):  # DVC never pushed it
            self.send_error(404)
            return
        if self.path.startswith("/reason/"):
            self.wfile.write(b"HTTP/1.0 500 \x1b]0;pwned\x07\x1b[31mRED\r\nContent-Length: 0\r\n\r\n")
            return
        self.send_response(200)
        self.end_headers()
        if self.path.endswith(f"{LISTING_MD5[2:]}.dir"):
            self.wfile.write(LISTING)
            return
        sent = 0
        try:
            while sent < FLOOD:
                self.wfile.write(b"X" * 65536)
                sent += 65536
        except OSError:
            pass
        self.sent.append(sent)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("tail", ["?token=SECRET123", "/?token=SECRET123", "#SECRET123", "?"])
def test_a_url_with_a_query_or_fragment_is_refused_without_showing_it(tail: str) -> None:
    with pytest.raises(ConfigError, match="remote 'web': its URL holds a query string or fragment") as caught:
        DvcHttpRemote(f"https://example.com/dvc{tail}", "web")
    assert "SECRET" not in str(caught.value) and "example.com" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"'http://\[::1/dvc/?' is not an http") as caught:  # nor when it is bad
        DvcHttpRemote(f"http://[::1/dvc{tail}", "web")
    assert "SECRET" not in str(caught.value)


def test_a_reason_phrase_is_shown_as_one_printable_line(server: str, tmp_path: Path) -> None:
    data = b"x"
    entry = PathEntry(Digest.of_bytes(data), 1, None, hashlib.md5(data).hexdigest())
    remote = DvcHttpRemote(f"{server}/reason", "web", lambda: {entry.digest: entry})
    with pytest.raises(BackendUnavailableError, match="answered HTTP 500") as caught:
        remote.download([entry.digest], LocalObjectStore(tmp_path / "store"))
    assert str(caught.value).isprintable() and str(caught.value).endswith("]0;pwned [31mRED")


def test_converting_a_folder_fetches_at_most_the_size_dvc_recorded(server: str, tmp_path: Path) -> None:
    root = tmp_path / "project"
    (root / ".dvc").mkdir(parents=True)
    (root / ".dvc" / "config").write_text(f"[core]\n    remote = web\n['remote \"web\"']\n    url = {server}/dvc\n")
    (root / "data.dvc").write_text(f"outs:\n- md5: {LISTING_MD5}.dir\n  size: 30\n  nfiles: 2\n  hash: md5\n"
                                   "  path: data\n")
    _Hostile.sent.clear()
    report = convert(root, cli_env())
    why = dict(report.not_carried)["data"]
    assert "data/a.txt" in why and "more than the 30 bytes expected" in why, report.not_carried
    assert not (root / "data").exists()
    assert not list((root / ".shipyard").glob("from-dvc-*"))  # nothing fetched is left behind
    # the client hung up long before the flood ended (a socket buffer, not 16 MiB)
    assert all(n < FLOOD for n in _Hostile.sent), _Hostile.sent


def test_an_http_url_without_layout_dvc_is_refused_without_its_query(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'https://example.com/dvc' is http\(s\).*add `layout: dvc`") as caught:
        open_remote(RemoteSpec(url="https://example.com/dvc?token=SECRET123"), tmp_path, "web")
    assert "SECRET" not in str(caught.value)


def test_a_converted_stage_whose_outputs_dvc_never_pushed_runs(server: str, tmp_path: Path) -> None:
    """shipyard.lock's entry for a stage (converted from dvc.lock) is the cache record a DVC remote lacks; when the
    remote does not have the outputs, or cannot be reached, that is a cache miss: the stage runs, as `dvc repro`
    would, rather than failing."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "data.txt").write_text("hello\n")
    stages = "stages:\n  s:\n    cmd: cat data.txt data.txt > out.txt\n    deps: [data.txt]\n    outs: [out.txt]\n"
    env = cli_env()
    for url in (f"{server}/missing",):  # (a remote that cannot be reached takes the same path: BackendUnavailable)
        (root / "shipyard.yaml").write_text(f"version: 1\n{stages}remotes:\n  dvc:\n    url: {url}\n    layout: dvc\n"
                                            "default_remote: dvc\n")
        run_shipyard("run", cwd=root, env=env)
        lock = load_lock(root)
        out = lock.stages["s"].outs["out.txt"]
        lock.stages["s"].outs["out.txt"] = replace(out, dvc_md5=hashlib.md5(b"hello\n" * 2).hexdigest())
        (root / "shipyard.lock").write_text(lock.to_yaml())
        shutil.rmtree(root / ".shipyard")  # a fresh clone: no local store, no stage-cache refs
        (root / "out.txt").unlink()
        done = run_shipyard("run", cwd=root, env=env, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (root / "out.txt").read_text() == "hello\n" * 2
        assert load_lock(root).stages["s"].outs["out.txt"].dvc_md5 is not None  # the same bytes keep DVC's md5
