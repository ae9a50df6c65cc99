"""The git state of a working tree: commit, branch, and a digest of any uncommitted diff."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from shipyard.core.lineage.records import NO_CODE_VERSION, CodeVersion
from shipyard.ports import ObjectStore

GIT_TIMEOUT = 10


def find_repo(start: Path) -> Path | None:
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / ".git").exists():
            return folder
    return None


def _git(repo: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=GIT_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.decode(errors="replace") if done.returncode == 0 else None


def code_version(start: Path, store: ObjectStore) -> CodeVersion:
    """Commit and branch of the repository around ``start``; a dirty diff is stored as an object."""
    repo = find_repo(start)
    if repo is None:
        return NO_CODE_VERSION
    commit = _git(repo, "rev-parse", "--verify", "-q", "HEAD")
    branch = _git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    dirty = bool(status and status.strip())
    diff_digest = None
    if dirty and commit:
        diff = _git(repo, "diff", "HEAD", "--binary")
        if diff:
            diff_digest = store.put_bytes(diff.encode())
    return CodeVersion(
        commit=commit.strip() if commit else None, branch=branch.strip() if branch else None,
        dirty=dirty, diff_digest=diff_digest, repo=str(repo),
    )


def remote_url(start: Path, name: str = "origin") -> str | None:
    """The URL of the remote ``name`` of the repository around ``start``; None without one."""
    repo = find_repo(start)
    url = _git(repo, "remote", "get-url", name) if repo is not None else None
    return url.strip() or None if url else None


def toplevel(start: Path) -> Path | None:
    """The root of the git working tree around ``start``; None outside one."""
    repo = find_repo(start)
    top = _git(repo, "rev-parse", "--show-toplevel") if repo is not None else None
    return Path(top.strip()) if top and top.strip() else None


def first_tracked(root: Path, paths: list[str]) -> str | None:
    """One of ``paths`` (relative to ``root``) that git tracks a file at or under, or None (none does, or
    ``root`` is in no git repository). ``git ls-files`` per 200 paths; each stops at the first name it prints."""
    if not paths or find_repo(root) is None:
        return None
    for i in range(0, len(paths), 200):
        batch = paths[i:i + 200]
        name = _first_listed(root, batch)
        for path in batch if name else ():
            if name == path or (name or "").startswith(path + "/"):
                return path
    return None


def _first_listed(root: Path, paths: list[str]) -> str | None:
    try:
        proc = subprocess.Popen(["git", "--literal-pathspecs", "-C", str(root), "ls-files", "-z", "--", *paths],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return None
    first = b""
    with proc:
        assert proc.stdout is not None
        while b"\0" not in first and len(first) < 65536:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            first += chunk
        proc.kill()
    return first.split(b"\0", 1)[0].decode(errors="replace") or None
