"""Files of one git commit, read without a checkout: for ``metrics diff``, ``params diff`` and ``plots diff``.

Three git processes at most per call, whatever the number of files: ``rev-parse`` names the commit,
one ``cat-file --batch-check`` sizes every asked path (and the commit's ``shipyard.lock``), one
``cat-file --batch`` streams the blobs that fit. A blob over the caller's bound is never read. The
bytes are untrusted: the caller parses them with its bounds.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shipyard.adapters.vcs.history import GIT, _environment
from shipyard.errors import BackendUnavailableError, InvalidInputError

GIT_TIMEOUT = 60  # local reads of a few blobs
MAX_TOTAL_BYTES = 64 * 1024 * 1024  # the blobs of one read_blobs call, all together (git compresses: a small
# repository can hold many files of the per-file bound)
MAX_NAME_BYTES = 4096 + 64  # one path of ls-tree
MAX_REV_CHARS = 200
_SAFE_REV = re.compile(r"[^\s\0-\x1f\x7f:]+")  # git's own rules are looser; no option, no blank, no path part


@dataclass(frozen=True, slots=True)
class Blob:
    """One path of a commit: its size, and its bytes when they fit the bound (None when they did not)."""

    size: int
    data: bytes | None


def resolve_commit(root: Path, rev: str) -> str | None:
    """The full commit id ``rev`` names in the repository around ``root`` (a branch, a tag, ``HEAD~1``, a short
    id); None when it names no commit or ``root`` is in no repository."""
    if not rev or len(rev) > MAX_REV_CHARS or rev.startswith("-") or not _SAFE_REV.fullmatch(rev):
        return None
    done = _run(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}", check=False)
    if done is None:
        return None
    text = done.decode(errors="replace").strip()
    return text if re.fullmatch(r"[0-9a-f]{40}(?:[0-9a-f]{24})?", text) else None


def read_blobs(root: Path, commit: str, paths: Sequence[str], max_bytes: int,
               max_total: int = MAX_TOTAL_BYTES) -> dict[str, Blob]:
    """The files ``paths`` (relative to ``root``) hold in ``commit``; a path that is no file there is left out.

    ``paths`` must be clean relative paths (``safe_relpath``): they are asked for as ``COMMIT:./PATH``. The
    blobs that fit ``max_bytes`` are read only when together they fit ``max_total`` (else InvalidInputError,
    nothing read), streamed blob by blob from one ``git cat-file --batch``."""
    asked = [p for p in dict.fromkeys(paths) if "\n" not in p and "\r" not in p]
    if not asked:
        return {}
    names = [f"{commit}:./{p}" for p in asked]
    found = (_run(root, "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)",
                  stdin="".join(f"{n}\n" for n in names).encode()) or b"").decode(errors="replace").splitlines()
    sizes: dict[str, tuple[str, int]] = {}
    for path, line in zip(asked, found, strict=False):
        parts = line.split()
        if len(parts) == 3 and parts[1] == "blob" and parts[2].isdigit():
            sizes[path] = (parts[0], int(parts[2]))
    wanted = {oid: size for oid, size in sizes.values() if size <= max_bytes}
    total = sum(wanted.values())
    if total > max_total:
        raise InvalidInputError(f"the {len(wanted)} files asked for at commit {commit[:8]} hold {total} bytes, more "
                                f"than the {max_total} read from one revision at once; none was read (ask for fewer "
                                "files)")
    contents = _cat(root, wanted, max_total) if wanted else {}
    return {path: Blob(size, contents.get(oid)) for path, (oid, size) in sizes.items()}


def list_files(root: Path, commit: str, folder: str, limit: int) -> list[str] | None:
    """The files under ``folder`` in ``commit`` (paths relative to ``root``), at most ``limit`` + 1 (one more tells
    the caller there were more): git's listing is streamed and stopped there, never read whole. None when git
    tracks nothing there."""
    names: list[str] = []
    with _git(root, "ls-tree", "-r", "-z", "--name-only", commit, "--", f"./{folder}/") as proc:
        assert proc.stdout is not None
        pending = b""
        while len(names) <= limit:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            pending += chunk
            *done, pending = pending.split(b"\0")
            names.extend(n.decode(errors="surrogateescape") for n in done if n)
            if len(pending) > MAX_NAME_BYTES:
                break  # no path is that long: not a listing
    return names[: limit + 1] or None


def _cat(root: Path, sizes: dict[str, int], max_total: int) -> dict[str, bytes]:
    """The blobs ``sizes`` names, read one by one from ``git cat-file --batch`` ("<oid> <type> <size>\\n<bytes>\\n"
    each, in the order asked); each must be the size asked, and all together at most ``max_total``."""
    out: dict[str, bytes] = {}
    total = 0
    with _git(root, "cat-file", "--batch", stdin="".join(f"{oid}\n" for oid in sizes).encode()) as proc:
        assert proc.stdout is not None
        for oid, expected in sizes.items():
            head = proc.stdout.readline(200).split()
            if len(head) != 3 or head[0].decode(errors="replace") != oid or not head[2].isdigit():
                break
            size = int(head[2])
            total += size
            if size != expected or total > max_total:
                break
            body = proc.stdout.read(size)
            if len(body) != size:
                break
            proc.stdout.read(1)
            out[oid] = body
    return out


@contextmanager
def _git(root: Path, *args: str, stdin: bytes | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``git ARGS`` with its output to be read as a stream (``stdin`` fed from a thread, so neither side blocks);
    killed after ``GIT_TIMEOUT`` or when the caller stops reading."""
    try:
        proc = subprocess.Popen([*GIT, "-C", str(root), *args], stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_environment())
    except FileNotFoundError as exc:
        raise BackendUnavailableError("git is not installed, so files at a git revision cannot be read; install "
                                      "git, or compare the workspace with runs or model versions") from exc
    timer = threading.Timer(GIT_TIMEOUT, proc.kill)
    timer.start()

    def feed() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(stdin or b"")
            proc.stdin.close()
        except OSError:  # git stopped reading (killed, or done): nothing more to give it
            pass

    feeder = threading.Thread(target=feed, daemon=True) if stdin else None
    if feeder is not None:
        feeder.start()
    try:
        yield proc
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
        proc.wait()
        if feeder is not None:
            feeder.join(timeout=5)


def _run(root: Path, *args: str, stdin: bytes | None = None, check: bool = True) -> bytes | None:
    try:
        done = subprocess.run([*GIT, "-C", str(root), *args], input=stdin, capture_output=True,
                              timeout=GIT_TIMEOUT, check=False, env=_environment())
    except FileNotFoundError as exc:
        raise BackendUnavailableError("git is not installed, so files at a git revision cannot be read; install "
                                      "git, or compare the workspace with runs or model versions") from exc
    except subprocess.TimeoutExpired as exc:
        raise BackendUnavailableError(f"git took over {GIT_TIMEOUT} s to read {root}'s history") from exc
    if done.returncode != 0:
        if not check:
            return None
        message = " ".join(done.stderr.decode(errors="replace").split())[:300]
        if "not a git repository" in message:
            raise InvalidInputError(f"{root} is in no git repository: only the workspace, runs and model versions "
                                    "can be compared")
        raise BackendUnavailableError(f"git {args[0]} failed in {root}: {message}")
    return done.stdout
