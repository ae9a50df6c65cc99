"""Files of one git commit, read without a checkout: for ``metrics diff``, ``params diff`` and ``plots diff``.

Three git processes at most per call, whatever the number of files: ``rev-parse`` names the commit,
one ``cat-file --batch-check`` sizes every asked path (and the commit's ``shipyard.lock``), one
``cat-file --batch`` streams the blobs that fit. A blob over the caller's bound is never read. The
bytes are untrusted: the caller parses them with its bounds.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shipyard.adapters.vcs.history import GIT, _environment
from shipyard.errors import BackendUnavailableError, InvalidInputError

GIT_TIMEOUT = 60  # local reads of a few blobs
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


def read_blobs(root: Path, commit: str, paths: Sequence[str], max_bytes: int) -> dict[str, Blob]:
    """The files ``paths`` (relative to ``root``) hold in ``commit``; a path that is no file there is left out.

    ``paths`` must be clean relative paths (``safe_relpath``): they are asked for as ``COMMIT:./PATH``."""
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
    contents = _cat(root, wanted) if wanted else {}
    return {path: Blob(size, contents.get(oid)) for path, (oid, size) in sizes.items()}


def list_files(root: Path, commit: str, folder: str, limit: int) -> list[str] | None:
    """The files under ``folder`` in ``commit`` (paths relative to ``root``), at most ``limit``; None when git
    tracks nothing there."""
    out = _run(root, "ls-tree", "-r", "-z", "--name-only", commit, "--", f"./{folder}/")
    names = [n for n in (out or b"").decode(errors="surrogateescape").split("\0") if n][: limit + 1]
    return names or None


def _cat(root: Path, sizes: dict[str, int]) -> dict[str, bytes]:
    raw = _run(root, "cat-file", "--batch", stdin="".join(f"{oid}\n" for oid in sizes).encode()) or b""
    out: dict[str, bytes] = {}
    at = 0
    for oid in sizes:  # "<oid> <type> <size>\n<bytes>\n" for each, in the order asked
        head_end = raw.find(b"\n", at)
        if head_end < 0:
            break
        head = raw[at:head_end].split()
        if len(head) != 3 or head[0].decode() != oid or not head[2].isdigit():
            break
        size = int(head[2])
        out[oid] = raw[head_end + 1: head_end + 1 + size]
        at = head_end + 1 + size + 1
    return out


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
