"""``shipyard store``: verify every object's digest; collect unreferenced objects."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.core.artifacts.digest import Digest
    from shipyard.wiring import Services

app = typer.Typer(help="Check and clean the content-addressed object store.", no_args_is_help=True)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise typer.BadParameter(f"{text!r}: use a number with s, m, h or d, e.g. 24h")
    return float(m[1]) * _UNITS[m[2] or "s"]


def referenced(svc: Services) -> set[Digest]:
    """What must be kept: everything the metadata database and the project's shipyard.lock reference."""
    from shipyard.core.workspace.lockfile import load_lock

    return set(svc.meta.referenced_digests()) | load_lock(svc.settings.project_root).digests()


ALL_RUNS = 2**62  # search_runs' limit when every run is wanted


def known_manifests(svc: Services) -> tuple[set[Digest], int]:
    """Roots known to be manifests (model versions, tracked folders, folder artifacts of runs), and how many
    runs and model versions the metadata database records (0: it may not be the store's database)."""
    from shipyard.core.workspace.lockfile import load_lock

    lock = load_lock(svc.settings.project_root)
    manifests = {e.digest for e in lock.data.values() if e.is_dir}
    manifests.update(e.digest for st in lock.stages.values() for e in st.outs.values() if e.is_dir)
    versions = [mv for m in svc.meta.list_models() for mv in svc.meta.list_versions(m.name)]
    manifests.update(mv.manifest_digest for mv in versions)
    runs = svc.meta.search_runs([], ALL_RUNS, None)
    manifests.update(a.digest for r in runs for a in r.artifacts if a.is_dir)
    return manifests, len(versions) + len(runs)


@app.command("verify")
def verify(as_json: bool = out.JSON_OPTION) -> None:
    """Re-hash every object and name any that is corrupt or referenced but missing."""
    from shipyard.core.artifacts.maintenance import verify as run_verify

    svc = out.services()
    roots = referenced(svc)
    manifests, _ = known_manifests(svc)
    total = sum(size for _, size, _ in svc.store.iter_objects())
    if as_json:
        report = run_verify(svc.store, roots, manifests=manifests)
    else:
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        with Progress("verifying", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                      console=out.console(stderr=True), transient=True) as bar:
            task = bar.add_task("verify", total=total)
            report = run_verify(svc.store, roots, lambda n: bar.advance(task, n), manifests=manifests)
    from shipyard.core.registry.integrity import check_versions, legacy_versions

    report.tampered = check_versions(svc.meta, svc.store)
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
        verdict = "[green]ok[/green]" if report.ok else "[red]FAILED[/red]"
        out.console().print(f"{verdict}: {report.checked} objects, {out.size(report.bytes)} re-hashed; "
                            f"{len(report.corrupt)} corrupt, {len(report.missing)} missing"
                            + (f", {len(report.tampered)} registry problem(s)" if report.tampered else ""))
    if not report.ok:
        from shipyard.errors import IntegrityError

        raise IntegrityError(f"the store failed verification ({len(report.corrupt)} corrupt, {len(report.missing)} "
                             f"missing object(s), {len(report.tampered)} registry problem(s)): restore the objects "
                             "from a remote with `shipyard data pull`, or from a backup of the store")


GRACE_OPTION = typer.Option("24h", "--grace", help="Keep unreferenced objects younger than this (e.g. 30m, 24h).")
DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="Only report what would be removed.")
ALLOW_EMPTY_DB_OPTION = typer.Option(False, "--allow-empty-db", help="Collect even though the metadata database "
                                     "records no runs or model versions (by default gc then stops: the database "
                                     "may be missing or the wrong one).")


@app.command("gc")
def gc(grace: str = GRACE_OPTION, dry_run: bool = DRY_RUN_OPTION, as_json: bool = out.JSON_OPTION,
       allow_empty_db: bool = ALLOW_EMPTY_DB_OPTION) -> None:
    """Remove objects no run or model version references, older than the grace period."""
    from shipyard.core.artifacts.maintenance import gc as run_gc

    svc = out.services()
    manifests, records = known_manifests(svc)
    report = run_gc(svc.store, referenced(svc), seconds(grace), dry_run=dry_run, manifests=manifests,
                    records=None if allow_empty_db else records, metadata=f"the database at {_shown(svc)}")
    if as_json:
        out.print_json(report.to_dict())
        return
    verb = "would remove" if dry_run else "removed"
    temp = f"; {report.temp_removed} temp file(s) of interrupted writes removed" if report.temp_removed else ""
    out.console().print(f"{verb} {len(report.removed)} objects ({out.size(report.removed_bytes)}); kept "
                        f"{report.kept} ({report.young_unreferenced} unreferenced but within the grace period)"
                        + temp)


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
