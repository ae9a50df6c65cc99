"""Every version of the project's ``shipyard.lock`` that git holds: for gc, which keeps what they reference.

A few git processes whatever the history's length. ``log`` names every commit that wrote a
``shipyard.lock`` at any path (every ref, the stash, and the reflog: a commit amended or reset away is
still restorable until git expires it; merges and side branches included, nothing simplified away),
so a lock committed before the project folder moved or was renamed still counts; ``ls-files`` adds
the staged locks; one ``cat-file --batch-check`` maps each to its blob (most share a few), and one
``cat-file --batch`` streams each distinct blob once. Keeping what a lock at another path references
(another project of a monorepo, say) only keeps more. The bytes are untrusted: a blob larger than the
YAML bound is not read at all, and parsing is the core's (``core.workspace.history``).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

from shipyard.core.boundedyaml import MAX_BYTES
from shipyard.core.workspace.history import NO_HISTORY, LockHistory
from shipyard.core.workspace.lockfile import LOCK_FILE
from shipyard.errors import BackendUnavailableError

GIT_TIMEOUT = 600  # rev-list and batch-check over a very long history; local reads, no network
INDEX = "the index (staged)"
# Variables that make git read another repository, another index, a namespace of the refs, or replaced
# objects. gc must read the history of the repository that holds the project's lock, found from the
# project's folder, as git itself does with no variables set (git clears the same ones for submodules).
REDIRECTING = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
               "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_REPLACE_REF_BASE",
               "GIT_NO_REPLACE_OBJECTS", "GIT_CEILING_DIRECTORIES", "GIT_DISCOVERY_ACROSS_FILESYSTEM",
               "GIT_GRAFT_FILE", "GIT_SHALLOW_FILE", "GIT_QUARANTINE_PATH")
# `git replace` (and grafts) make a commit read as another: its own lock would be hidden. The replacements
# stay reachable through refs/replace/, so reading without them sees every lock, replaced or replacing.
GIT = ("git", "--no-replace-objects")
LOCK_PATHSPEC = f":(glob)**/{LOCK_FILE}"  # the lock at the top and in any folder
# Every commit that wrote a lock, whatever the user's configuration: the three settings that change what
# `git log` lists are set back to git's defaults (-c, which any git accepts and which beats the user's files
# and GIT_CONFIG_*): log.showRoot=false hid the root commit's files, log.showSignature put signature checks
# into the output, and log.follow turned the glob into one followed file (a git BUG on 2.39).
# --diff-filter=d counts every version but a deletion, a lock that was a link and became a file included.
LOG_CONFIG = ("-c", "log.showRoot=true", "-c", "log.showSignature=false", "-c", "log.follow=false")
LOG_OPTIONS = ("--all", "--reflog", "--full-history", "-m", "--root", "--no-renames", "--diff-filter=d")
COMMIT_LINE = re.compile(r"commit [0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256 object names


def lock_history(project_root: Path) -> LockHistory:
    """The lock versions of the git repository around ``project_root``; ``NO_HISTORY`` outside one."""
    root = project_root.resolve()
    if not any((folder / ".git").exists() for folder in (root, *root.parents)):
        if os.environ.get("GIT_DIR"):  # a repository kept elsewhere (a bare "dotfiles" repo) may hold the lock
            raise BackendUnavailableError(
                f"GIT_DIR is set but {root} is in no git repository of its own, so whether the repository at "
                f"{os.environ['GIT_DIR']} holds its shipyard.lock is unknown; nothing was removed: pass "
                "--workspace-only to keep only what the workspace, runs and model versions reference, or unset "
                "GIT_DIR if no repository holds the lock")
        return NO_HISTORY
    top = _git(root, "rev-parse", "--show-toplevel").decode().strip()
    shallow = _git(root, "rev-parse", "--is-shallow-repository").decode().strip() == "true"
    commits = int(_git(root, "rev-list", "--count", "--all", "--reflog").decode().strip() or 0)
    names = [*_committed_locks(Path(top)), *(f":{p}" for p in _staged_locks(Path(top)))]
    found = _git(root, "cat-file", "--batch-check=%(objectname) %(objecttype) %(objectsize)",
                 stdin="".join(f"{n}\n" for n in names).encode()).decode().splitlines()
    where: dict[str, str] = {}
    skipped: list[str] = []
    for name, line in zip(names, found, strict=False):
        parts = line.split()
        if len(parts) != 3 or parts[1] != "blob" or parts[0] in where:
            continue  # "missing": no lock in that commit; a lock already seen in another commit
        label = INDEX if name.startswith(":") else f"commit {name[:12]}"
        if not name.startswith(":") and not name.endswith(f":{LOCK_FILE}"):
            label += f" ({name.split(':', 1)[1]})"
        if int(parts[2]) > MAX_BYTES:
            skipped.append(f"{LOCK_FILE} in {label} is larger than {MAX_BYTES // (1024 * 1024)} MiB; skipped")
            where[parts[0]] = ""
            continue
        where[parts[0]] = label
    blobs = {oid: label for oid, label in where.items() if label}
    return LockHistory(repo=top, commits=commits, shallow=shallow, locks=_blobs(root, blobs),
                       skipped=tuple(skipped))


def _committed_locks(top: Path) -> list[str]:
    """``COMMIT:PATH`` of each lock version a commit wrote, at any path, in any commit git holds."""
    out = _git(top, *LOG_CONFIG, "log", *LOG_OPTIONS, "--format=commit %H", "--name-only", "-z", "--",
               LOCK_PATHSPEC).decode(errors="surrogateescape")
    names: list[str] = []
    commit = ""
    for field in out.split("\0"):  # "commit H", then "\nPATH", "PATH"... (-z: paths exactly as stored)
        if COMMIT_LINE.fullmatch(field):
            commit = field.removeprefix("commit ")
        elif field and commit:
            names.append(f"{commit}:{field.removeprefix(chr(10))}")
    return _askable(top, list(dict.fromkeys(names)))


def _askable(top: Path, names: list[str]) -> list[str]:
    """``names`` for cat-file's line protocol: a lock path with a line break cannot be asked for, and a lock
    that cannot be read might pin data, so gc stops rather than drop what it references."""
    odd = next((n for n in names if "\n" in n or "\r" in n), None)
    if odd is not None:
        raise _failed(top, ("cat-file",), f"a {LOCK_FILE} path with a line break ({odd[:80]!r})")
    return names


def _staged_locks(top: Path) -> list[str]:
    staged = _git(top, "ls-files", "-z", "--", LOCK_PATHSPEC).decode(errors="surrogateescape").split("\0")
    return _askable(top, [p for p in staged if p])


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    try:
        done = subprocess.run([*GIT, "-C", str(repo), *args], input=stdin, capture_output=True,
                              timeout=GIT_TIMEOUT, check=False, env=_environment())
    except FileNotFoundError as exc:
        raise BackendUnavailableError(
            f"{repo} is in a git repository but git is not installed, so the locks in its history cannot be "
            "read; nothing was removed: install git, or pass --workspace-only to keep only what the workspace, "
            "runs and model versions reference") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _failed(repo, args, str(exc)) from exc
    if done.returncode != 0:
        raise _failed(repo, args, done.stderr.decode(errors="replace"))
    return done.stdout


def _environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in REDIRECTING}


def _failed(repo: Path, args: tuple[str, ...], why: str) -> BackendUnavailableError:
    first = next((line.strip() for line in why.splitlines() if line.strip()), "no message")
    command = next((a for a in args if not a.startswith("-") and "=" not in a), "")  # past the -c settings
    return BackendUnavailableError(
        f"reading the git history of {repo} failed (git {command}: {first[:200]}), so the locks of older commits "
        "are unknown; nothing was removed: fix the repository, or pass --workspace-only to keep only what the "
        "workspace, runs and model versions reference")


def _blobs(repo: Path, blobs: dict[str, str]) -> Iterator[tuple[str, bytes]]:
    """Each blob of ``blobs`` as ``(label, bytes)``, streamed from one ``git cat-file --batch``."""
    if not blobs:
        return
    proc = subprocess.Popen([*GIT, "-C", str(repo), "cat-file", "--batch"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_environment())
    stdin, stdout = proc.stdin, proc.stdout
    if stdin is None or stdout is None:  # never: both are pipes
        raise _failed(repo, ("cat-file",), "no pipe")

    def feed() -> None:  # a thread, so a long list never deadlocks against a full stdout pipe
        try:
            with stdin:
                for oid in blobs:
                    stdin.write(f"{oid}\n".encode())
        except (BrokenPipeError, ValueError):
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        for oid, label in blobs.items():
            header = stdout.readline().split()
            if len(header) != 3 or header[0].decode() != oid:
                raise _failed(repo, ("cat-file",), f"unexpected answer for {oid}: {b' '.join(header)[:80]!r}")
            size = int(header[2])
            data = stdout.read(size)
            stdout.read(1)  # the newline after each object
            yield label, data
    finally:
        stdout.close()
        proc.kill()
        proc.wait()
        writer.join()
