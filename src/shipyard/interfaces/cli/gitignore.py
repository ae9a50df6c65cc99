"""Keep tracked data and stage outputs out of git: their digests in shipyard.lock are what git versions."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

MAX_GITIGNORE_BYTES = 1 << 20  # a larger .gitignore is left alone rather than read whole
_GLOB = re.compile(r"([\\*?\[])")  # what a .gitignore line reads as a pattern rather than as itself


def pattern(rel: str) -> str | None:
    """The .gitignore line that matches the project path ``rel`` and nothing else; None if no line can.

    ``*``, ``?``, ``[`` and ``\\`` are escaped (``out/[ab].csv`` must not ignore ``out/a.csv``), and so are
    trailing spaces, which git strips. The leading ``/`` anchors the line to the project's top and keeps a
    ``#`` or ``!`` at the start of ``rel`` from reading as a comment or a negation. A name with a line break
    cannot be written on one line: it would add a second line of its own (``*``, say) to git's configuration.
    """
    if "\n" in rel or "\r" in rel:
        return None
    escaped = _GLOB.sub(r"\\\1", rel)
    kept = escaped.rstrip(" ")
    return "/" + kept + "\\ " * (len(escaped) - len(kept))


def ignore(root: Path, rel: str) -> bool:
    """Add the line for ``rel`` (see ``pattern``) to the project's .gitignore unless it is there; True if added.

    The project's files are untrusted: a .gitignore that is a link (to ~/.bashrc, say), a hard link (the
    same file under another name, perhaps outside the project), or not a regular file (a FIFO would block
    the read) is never written, and a huge one is not read. In any of these cases nothing is added.
    """
    line = pattern(rel)
    if line is None:
        return False
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(root / ".gitignore", flags, 0o644)
    except OSError:  # a link (ELOOP), a folder, a read-only project: leave git's configuration alone
        return False
    with os.fdopen(fd, "r+b", buffering=0) as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size > MAX_GITIGNORE_BYTES:
            return False
        text = f.read().decode("utf-8", "replace")
        existing = text.splitlines()
        if line in existing or f"{line}/" in existing or (line == f"/{rel}" and rel in existing):
            return False
        prefix = "" if not text or text.endswith("\n") else "\n"
        f.write(f"{prefix}{line}\n".encode())
    return True
