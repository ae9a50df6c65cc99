"""Keep tracked data and stage outputs out of git: their digests in shipyard.lock are what git versions."""

from __future__ import annotations

import os
from pathlib import Path

MAX_GITIGNORE_BYTES = 1 << 20  # a larger .gitignore is left alone rather than read whole


def ignore(root: Path, rel: str) -> bool:
    """Add ``/rel`` to the project's .gitignore unless it is there; True if added.

    The project's files are untrusted: a .gitignore that is a link (to ~/.bashrc, say) is never written
    through, and a huge one is not read. In either case nothing is added.
    """
    line = f"/{rel}"
    try:
        fd = os.open(root / ".gitignore", os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError:  # a link (ELOOP), a folder, a read-only project: leave git's configuration alone
        return False
    with os.fdopen(fd, "r+b") as f:
        if os.fstat(fd).st_size > MAX_GITIGNORE_BYTES:
            return False
        f.seek(0)
        text = f.read().decode("utf-8", "replace")
        existing = text.splitlines()
        if line in existing or rel in existing or f"{line}/" in existing:
            return False
        prefix = "" if not text or text.endswith("\n") else "\n"
        f.write(f"{prefix}{line}\n".encode())
    return True
