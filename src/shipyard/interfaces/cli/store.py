"""``shipyard store``: verify every object's digest; collect unreferenced objects."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import typer

from shipyard.interfaces.cli import output as out
from shipyard.interfaces.cli import store_cache

if TYPE_CHECKING:
    from pathlib import Path

    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.artifacts.maintenance import GcReport
    from shipyard.ports import Remote
    from shipyard.wiring import Services

app = typer.Typer(help="Check and clean the content-addressed object store.", no_args_is_help=True)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> float:
    """A grace period: a number with its unit (``30m``, ``24h``); a bare number other than 0 is refused, since
    ``--grace 24`` read as seconds would let gc remove what the user meant to keep for a day."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m or (not m[2] and float(m[1]) != 0):
        raise typer.BadParameter(f"{text!r}: give a number with its unit, s, m, h or d (e.g. 24h or 90s)",
                                 param_hint="--grace")
    return float(m[1]) * _UNITS[m[2] or "s"]


def referenced(svc: Services) -> set[Digest]:
    """What must be kept: everything the metadata database and the project's shipyard.lock reference."""
    from shipyard.core.registry.objects import referenced_by_records
    from shipyard.core.workspace.lockfile import load_lock

    return (set(svc.meta.referenced_digests()) | load_lock(svc.settings.project_root).digests()
            | referenced_by_records(svc.store, svc.meta.audit_events(None)))


ALL_RUNS = 2**62  # search_runs' limit when every run is wanted


def known_manifests(svc: Services) -> tuple[set[Digest], int, int]:
    """Roots known to be manifests (model versions, tracked folders, folder artifacts of runs), and how many
    runs and model versions the metadata database records (none at all: it may not be the store's database)."""
    from shipyard.core.workspace.history import lock_roots
    from shipyard.core.workspace.lockfile import load_lock

    _, manifests = lock_roots(load_lock(svc.settings.project_root))
    versions = [mv for m in svc.meta.list_models() for mv in svc.meta.list_versions(m.name)]
    manifests.update(mv.manifest_digest for mv in versions)
    runs = svc.meta.search_runs([], ALL_RUNS, None)
    manifests.update(a.digest for r in runs for a in r.artifacts if a.is_dir)
    return manifests, len(runs), len(versions)


REPAIR_OPTION = typer.Option(False, "--repair", help="With the store in S3: upload this machine's cached copy of "
                             "each corrupt or missing object (re-hashed first), then check again.")


@app.command("verify")
def verify(repair: bool = REPAIR_OPTION, as_json: bool = out.JSON_OPTION) -> None:
    """Re-hash every object and name any that is corrupt or referenced but missing."""
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.artifacts.maintenance import verify as run_verify
    from shipyard.wiring.store_cache import repair_from_cache, verifiable

    svc = out.services()
    store = verifiable(svc.store)  # a store in S3: its bytes there, not the local cache's
    roots = referenced(svc)
    manifests, _, _ = known_manifests(svc)
    total = sum(size for _, size, _ in store.iter_objects())
    if as_json:
        report = run_verify(store, roots, manifests=manifests)
    else:
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        with Progress("verifying", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      console=out.console(stderr=True), transient=True) as bar:
            task = bar.add_task("verify", total=total)
            report = run_verify(store, roots, lambda n: bar.advance(task, n), manifests=manifests)
    from shipyard.core.registry.integrity import check_versions, legacy_versions

    report.tampered = check_versions(svc.meta, store)
    repaired = repair_from_cache(svc.store, [*map(Digest.parse, report.corrupt), *map(Digest.parse, report.missing)]
                                 ) if repair and not report.ok else []
    if repaired:
        fixed = {str(d) for d in repaired}
        report.corrupt = [d for d in report.corrupt if d not in fixed]
        report.missing = [d for d in report.missing if d not in fixed]
        report.tampered = check_versions(svc.meta, verifiable(svc.store))  # a fresh listing
    legacy = legacy_versions(svc.meta)
    if as_json:
        out.print_json({**report.to_dict(), "manifest_only": legacy})
    else:
        for d in report.corrupt:
            out.console().print(f"[red]corrupt[/red] {d}")
        for d in report.missing:
            out.console().print(f"[red]missing[/red] {d}")
        from rich.markup import escape

        for line in report.tampered:
            out.console().print(f"[red]tampered[/red] {escape(line)}")
        if legacy:
            out.console().print(f"note: {len(legacy)} version(s) registered before versions carried a record "
                                f"digest are checked on their manifest only, e.g. {escape(legacy[0])}")
        if repair:
            out.console().print(f"repaired {len(repaired)} object(s) from this machine's cache"
                                if store is not svc.store else "--repair: the store is local, no other copy is here")
        verdict = "[green]ok[/green]" if report.ok else "[red]FAILED[/red]"
        from shipyard.wiring import store_is_shared

        where = f" in {escape(_where(svc))}" if store_is_shared(svc.settings) else ""
        out.console().print(f"{verdict}: {report.checked} objects{where}, {out.size(report.bytes)} re-hashed; "
                            f"{len(report.corrupt)} corrupt, {len(report.missing)} missing"
                            + (f", {len(report.tampered)} registry problem(s)" if report.tampered else ""))
    if not report.ok:
        from shipyard.errors import IntegrityError

        how = ("run `shipyard store verify --repair` on a machine whose cache holds them (it uploads them), or "
               "restore them from a backup of the bucket") if store is not svc.store else (
               "restore the objects from a remote with `shipyard data pull`, or from a backup of the store")
        raise IntegrityError(f"the store failed verification ({len(report.corrupt)} corrupt, {len(report.missing)} "
                             f"missing object(s), {len(report.tampered)} registry problem(s)): {how}")


GRACE_OPTION = typer.Option("24h", "--grace", help="Keep unreferenced objects younger than this (e.g. 30m, 24h).")
DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="Only report what would be removed, and why that is safe.")
ALLOW_EMPTY_DB_OPTION = typer.Option(False, "--allow-empty-db", help="Collect even though the metadata database "
                                     "records no runs or model versions while the store holds what runs write "
                                     "(by default gc then stops: the database may be missing or the wrong one).")
WORKSPACE_ONLY_OPTION = typer.Option(False, "--workspace-only", help="DANGEROUS: ignore git history; keep only "
                                     "what the current shipyard.lock, runs and model versions reference. Data "
                                     "pinned only by older commits, other branches or tags is removed.")
REMOTE_OPTION = typer.Option(None, "--remote", "-r", help="Remote name from shipyard.yaml to look the removed "
                             "objects up on (default: default_remote; none when the store itself lives in S3).")
FORCE_SHORT_GRACE_OPTION = typer.Option(
    False, "--force-short-grace", help="On a shared store (in S3, or a folder other machines or projects write "
    "to), allow a --grace shorter than 24h. Another machine's run may store objects and record them only "
    "minutes or hours later (a pipeline stage's outputs, `data add` before its lock is committed), and an "
    "object a writer re-uses is refreshed in the store only once it is 12h old: below 24h gc may delete what "
    "such a run is about to reference.")
SHARED_MIN_GRACE = 24 * 3600.0  # see FORCE_SHORT_GRACE_OPTION


@app.command("gc")
def gc(grace: str = GRACE_OPTION, dry_run: bool = DRY_RUN_OPTION, workspace_only: bool = WORKSPACE_ONLY_OPTION,
       remote: str = REMOTE_OPTION, as_json: bool = out.JSON_OPTION,
       allow_empty_db: bool = ALLOW_EMPTY_DB_OPTION, force_short_grace: bool = FORCE_SHORT_GRACE_OPTION) -> None:
    """Remove objects that no lock in git history, run or model version references, older than the grace period.

    On a shared store (in S3, or a folder others write to) gc searches every run and model version of the
    shared database (every machine's), and this project's lock history; it holds a database-wide lock, so
    two machines never collect at once, and deletes only after in-flight registrations have been recorded.
    Data that only a shipyard.lock in another clone references (commits this checkout has not fetched) is
    protected by the grace period alone: fetch every branch before collecting a shared store.
    """
    collect(grace, dry_run, as_json, allow_empty_db, workspace_only, remote, force_short_grace)


def collect(grace: str, dry_run: bool, as_json: bool, allow_empty_db: bool = False, workspace_only: bool = False,
            remote_name: str | None = None, force_short_grace: bool = False) -> None:
    """gc of the store, keeping what the workspace, every lock in git history, runs and versions reference."""
    grace_seconds = seconds(grace)  # a bad period stops gc before it reads anything
    from shipyard.core.artifacts.maintenance import GcReport
    from shipyard.core.artifacts.maintenance import gc as run_gc
    from shipyard.core.workspace.history import history_roots, require_complete
    from shipyard.wiring import object_stats, store_is_shared

    svc = out.services()
    shared = store_is_shared(svc.settings)
    if shared and grace_seconds < SHARED_MIN_GRACE and not force_short_grace:
        from shipyard.errors import InvalidInputError

        raise InvalidInputError(f"--grace {grace} is shorter than 24h on the shared store {_where(svc)}: another "
                                "machine's run may not have recorded what it stored yet; nothing was removed; "
                                "pass --force-short-grace if no one else is writing")
    root = svc.settings.project_root
    # a store of this project's own has no other writers and no other gc (machines sharing only the database
    # collect their own stores): it takes no lock, as before stores were shared
    from shipyard.core.artifacts.maintenance import no_lock, no_writers_lock

    gc_lock, writers_lock = (svc.meta.gc_lock, svc.meta.writers_lock) if shared else (no_lock, no_writers_lock)
    with gc_lock():  # before anything is read: a second gc stops here, in one line
        manifests, runs, versions = known_manifests(svc)
        roots = referenced(svc)
        report = GcReport(runs=runs, versions=versions)
        if shared:
            report.store = _where(svc)
            report.database = _shown(svc)
        if workspace_only:
            report.history = "not searched (--workspace-only)"
        else:
            from shipyard.wiring import lock_history

            history = lock_history(root)
            require_complete(history)
            found = history_roots(history)
            roots |= found.digests
            manifests |= found.manifests
            report.history = "git" if history.repo is not None else "no git repository"
            report.commits, report.locks, report.warnings = history.commits, found.locks, found.warnings

        def again() -> tuple[set[Digest], set[Digest]]:
            """What the database and the workspace reference now (the history did not move)."""
            return referenced(svc), known_manifests(svc)[0]

        in_s3 = svc.settings.store_remote is not None
        lookup = None if in_s3 and remote_name is None else _lookup_remote(root, remote_name, report)
        report = run_gc(svc.store, roots, grace_seconds, dry_run=dry_run, manifests=manifests,
                        records=None if allow_empty_db else runs + versions,
                        metadata=f"the database at {_shown(svc)}", remote=lookup, report=report,
                        writers_lock=writers_lock, references=again, stats=object_stats(svc.store))
        report.locked = shared
    if as_json:
        out.print_json(report.to_dict())
        return
    from rich.markup import escape

    c = out.console()
    for line in report.warnings:
        c.print(f"[yellow]warning:[/yellow] {escape(line)}")
    for line in describe(report):
        c.print(escape(line))  # wrapped to the terminal at spaces


def _lookup_remote(root: Path, name: str | None, report: GcReport) -> Remote | None:
    """The remote to look removed objects up on: the one named, else the default; None if none is declared."""
    from shipyard.core.project.loader import load_config
    from shipyard.errors import ShipyardError
    from shipyard.wiring import open_named_remote

    config = load_config(root)
    if name is None and not config.remotes:
        return None
    try:
        return open_named_remote(config, root, name)
    except ShipyardError as exc:
        if name is not None:
            raise
        report.remote_problem = " ".join(str(exc).split())[:300]
        return None


SHOWN_OBJECTS = 10  # digests a dry run names in the text output


def describe(report: GcReport) -> list[str]:
    """What gc removed (or would), and why that is safe: what was searched for references, where copies are.
    A few short lines (each wrapped to the terminal), not one long one."""
    lock = "the workspace's lock" if report.store is None else "this project's shipyard.lock"
    if report.history == "git":
        lock += f", the locks of {report.commits} commit(s) ({report.locks} distinct lock version(s))"
    records = f"{report.runs} run(s), {report.versions} model version(s)"
    note = ""
    if report.history == "no git repository":
        note = " (no git repository: no history to search)"
    elif report.history.startswith("not searched"):
        note = " (git history NOT searched: --workspace-only)"
    if report.store is not None:  # a shared store: whose records were searched, and this project's history
        searched = (f"every machine's {records.replace(', ', ' and ')} in the shared database at "
                    f"{report.database}, and {lock}{note}")
    else:
        searched = f"{lock}, {records}{note}"
    kept = f"kept {report.kept} ({report.young_unreferenced} unreferenced but within the grace period)"
    temp = [f"{report.temp_removed} temp file(s) of interrupted writes removed"] if report.temp_removed else []
    if report.locked:
        temp.append("held the database-wide gc lock: no other machine collected meanwhile; "
                    + ("a run without --dry-run also waits for in-flight writers to record what they stored"
                       if report.dry_run else "in-flight writers recorded what they stored before anything "
                       "was deleted, and new ones waited"))
    n = len(report.removed)
    if not n:
        return [f"nothing to remove, {kept}", f"searched {searched}", *temp]
    verb = "would remove" if report.dry_run else "removed"
    lines = [f"{verb} {n} object(s) ({out.size(report.removed_bytes)}) referenced by none of: {searched}"]
    if report.dry_run:
        shown = ", ".join(out.short(d) for d in report.removed[:SHOWN_OBJECTS])
        more = f" and {n - SHOWN_OBJECTS} more" if n > SHOWN_OBJECTS else ""
        lines.append(f"  {shown}{more} (--json lists every digest)")
    if report.not_on_remote == 0:
        lines.append(f"all are on remote {report.remote}")
    elif report.not_on_remote is not None:
        lines.append(f"{report.not_on_remote} of them are not on remote {report.remote}: "
                     "no other stored copy exists")
    elif report.remote_problem:
        lines.append(f"whether a remote holds them is unknown ({report.remote_problem})")
    elif report.store is not None and report.store.startswith("s3://"):
        lines.append(f"the store is itself in S3 ({report.store}): no remote was looked up (--remote NAME "
                     "checks a backup)")
    else:
        lines.append("no remote is declared: no other stored copy exists")
    return [*lines, kept, *temp]


def _where(svc: Services) -> str:
    """The store's location: its S3 URL, or its folder."""
    spec = svc.settings.store_remote
    return spec.url if spec is not None else str(svc.settings.store_path)


def _shown(svc: Services) -> str:
    """The database URL without a password."""
    from urllib.parse import urlsplit, urlunsplit

    url = svc.settings.db_url
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")))
    return url


app.command("cache")(store_cache.cache)  # the local cache of a store in S3 (store_cache.py)
