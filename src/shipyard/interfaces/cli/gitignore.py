"""Keep tracked data out of git: its digest in shipyard.lock is what git versions."""

from __future__ import annotations

from pathlib import Path


def ignore(root: Path, rel: str) -> bool:
    """Add ``/rel`` to the project's .gitignore unless it is there; True if added."""
    path = root / ".gitignore"
    line = f"/{rel}"
    existing = path.read_text().splitlines() if path.exists() else []
    if line in existing or rel in existing or f"{line}/" in existing:
        return False
    prefix = "" if not existing or path.read_text().endswith("\n") else "\n"
    with open(path, "a") as f:
        f.write(f"{prefix}{line}\n")
    return True
