"""What the versions of ``shipyard.lock`` in version control reference: the roots gc keeps besides the workspace's.

A lock committed once pins data someone may check out again (`git checkout OLD && shipyard data pull`),
so gc keeps what any of them references, as DVC's ``gc --all-commits`` does. The locks are read from
git by an adapter (``shipyard.adapters.vcs.history``) and handed here as bytes: they are untrusted
input, parsed with the same bounds as the file on disk; one that is not a lock Shipyard could have
written is skipped with a warning, never a crash.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shipyard.core.artifacts.digest import Digest
from shipyard.core.workspace.lockfile import LOCK_FILE, Lock, parse_lock
from shipyard.errors import ConfigError, ShipyardError

MAX_WARNINGS = 20  # skipped locks named one per line; past this, counted


@dataclass(frozen=True)
class LockHistory:
    """The versions of the project's lock that version control holds.

    ``repo``: the repository's top folder, or None when the project is not in one. ``commits``: how
    many commits were searched (every ref, the stash and the reflog). ``shallow``: the clone lacks
    older history, whose locks are therefore unknown. ``locks``: ``(where, bytes)`` of each distinct
    version (``where`` names a commit, or the index for a staged lock). ``skipped``: versions too large
    to read, named like the parse failures.
    """

    repo: str | None = None
    commits: int = 0
    shallow: bool = False
    locks: Iterable[tuple[str, bytes]] = ()
    skipped: tuple[str, ...] = ()


NO_HISTORY = LockHistory()


@dataclass
class HistoryRoots:
    """Digests the locks of ``LockHistory`` reference, and which of them are folder manifests."""

    digests: set[Digest] = field(default_factory=set)
    manifests: set[Digest] = field(default_factory=set)
    locks: int = 0  # distinct lock versions read
    warnings: list[str] = field(default_factory=list)


def lock_roots(lock: Lock) -> tuple[set[Digest], set[Digest]]:
    """Every digest ``lock`` references, and those known to be manifests (tracked folders, folder outputs)."""
    manifests = {e.digest for e in lock.data.values() if e.is_dir}
    manifests.update(e.digest for st in lock.stages.values() for e in st.outs.values() if e.is_dir)
    return lock.digests(), manifests


def history_roots(history: LockHistory) -> HistoryRoots:
    """Read every lock version of ``history``; a damaged or hostile one is skipped and named in ``warnings``."""
    out = HistoryRoots()
    problems = list(history.skipped)
    for where, raw in history.locks:
        try:
            lock = parse_lock(raw, f"{LOCK_FILE} in {where}", "skipped")
        except ShipyardError as exc:
            problems.append(" ".join(str(exc).split())[:300])
            continue
        except (ValueError, TypeError, RecursionError) as exc:  # whatever a hostile file finds: never a crash
            problems.append(f"{LOCK_FILE} in {where} is not a lock Shipyard wrote ({type(exc).__name__}); skipped")
            continue
        digests, manifests = lock_roots(lock)
        out.digests |= digests
        out.manifests |= manifests
        out.locks += 1
    out.warnings = problems[:MAX_WARNINGS]
    if len(problems) > MAX_WARNINGS:
        out.warnings.append(f"... and {len(problems) - MAX_WARNINGS} more lock versions skipped")
    return out


def require_complete(history: LockHistory) -> None:
    """ConfigError for a shallow clone: the locks of the commits it lacks are unknown, so nothing is provably
    unreferenced. gc refuses rather than guess (keeping everything would make gc a silent no-op)."""
    if history.shallow:
        raise ConfigError(
            f"{history.repo} is a shallow clone: the locks of older commits are not here, so gc cannot tell which "
            "objects they reference; nothing was removed: run `git fetch --unshallow` and gc again, or pass "
            "--workspace-only to keep only what the workspace, runs and model versions reference")
