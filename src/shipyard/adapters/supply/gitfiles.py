"""Which paths of a project git tracks (``git ls-files``): code, never a dataset in an SBOM."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

GIT_TIMEOUT = 10
_BATCH = 500  # paths per git call: far below any command-line limit


def git_tracked(root: Path, paths: Sequence[str]) -> set[str]:
    """The ``paths`` (relative to ``root``) that git tracks: a file in the index, or a folder holding one.
    Empty outside a repository, or when git is missing or fails (the caller's other rules still apply)."""
    clean = [p for p in paths if p and not p.startswith(("/", "-")) and ".." not in p.split("/")]
    listed: set[str] = set()
    for start in range(0, len(clean), _BATCH):
        try:
            done = subprocess.run(["git", "--literal-pathspecs", "-C", str(root), "ls-files", "-z", "--",
                                   *clean[start:start + _BATCH]], capture_output=True, timeout=GIT_TIMEOUT,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired):
            return set()
        if done.returncode != 0:
            return set()
        listed.update(name for name in done.stdout.decode(errors="surrogateescape").split("\0") if name)
    folders = {name.rsplit("/", i)[0] for name in listed for i in range(1, name.count("/") + 1)}
    return {p for p in clean if p.rstrip("/") in listed or p.rstrip("/") in folders}
