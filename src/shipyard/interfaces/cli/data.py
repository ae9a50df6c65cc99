"""``shipyard data``: version files and folders by digest, see what changed, restore, sync with remotes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shipyard.interfaces.cli import output as out
from shipyard.interfaces.cli import store

if TYPE_CHECKING:
    from shipyard.core.workspace.data import PathStatus, Workspace
    from shipyard.ports import Remote

app = typer.Typer(help="Version datasets (files and folders) by content digest, pinned in shipyard.lock.",
                  no_args_is_help=True)


def workspace() -> Workspace:
    from shipyard.wiring import open_workspace, settings_from_environment

    return open_workspace(settings_from_environment())


@app.command("add")
def add(
    paths: list[Path] = typer.Argument(..., help="Files or folders inside the project."),
    hardlink: bool = typer.Option(False, "--hardlink", help="Link files into the store instead of copying "
                                  "(fast, no extra space; the files become read-only). Refused as root with "
                                  "CAP_DAC_OVERRIDE, which could write through the read-only links."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Store PATHS by content and record their digests in shipyard.lock (commit it to pin the data)."""
    from shipyard.core.workspace.add import add as add_paths
    from shipyard.interfaces.cli.gitignore import ignore
    from shipyard.wiring import settings_from_environment

    ws = workspace()
    settings = settings_from_environment()
    with out.progress_bar("adding", as_json) as advance:
        added = add_paths(ws, paths, hardlink=hardlink, progress=advance,
                          private=(settings.home, settings.store_path))
    for rel in [".shipyard", *(rel for rel, _ in added)]:  # the store itself never goes into git either
        ignore(ws.root, rel)
    if as_json:
        out.print_json({rel: e.to_dict() for rel, e in added})
        return
    for rel, e in added:
        what = out.plural(e.files if e.files is not None else 1, "file")
        out.console().print(f"{out.plain(rel)}: {what}, {out.size(e.size)} → {out.short(e.digest)}")
    import os
    import shlex

    from rich.markup import escape

    # named from where you are: from a subfolder, `git add shipyard.lock` would find no such file
    lock, ignored = (os.path.relpath(ws.root / name) for name in ("shipyard.lock", ".gitignore"))
    out.console().print(escape(f"recorded in {lock}; commit it with `git add {shlex.quote(lock)} "
                               f"{shlex.quote(ignored)}`"))


@app.command("status")
def status(as_json: bool = out.JSON_OPTION) -> None:
    """What changed in each tracked path since it was recorded: added, modified, deleted files."""
    from shipyard.core.workspace import data
    from shipyard.core.workspace.lockfile import load_lock

    ws = workspace()
    report = data.status(ws, load_lock(ws.root))
    if as_json:
        out.print_json([s.to_dict() for s in report])
    else:
        _print_status(report)


def _print_status(report: list[PathStatus]) -> None:
    # Piped (a script, CI, a benchmark): plain lines, the same words, without loading Rich (a fifth of the
    # command's start-up); on a terminal, Rich colours the states.
    lines = _status_lines(report)
    if not sys.stdout.isatty():
        sys.stdout.write("".join(f"{word}{gap}{out.printable(text)}\n" for word, gap, text in lines))
        return
    c = out.console()
    for word, gap, text in lines:
        colour = _COLOURS.get(word)
        c.print(f"[{colour}]{word}[/{colour}]{gap}{out.plain(text)}" if colour else f"{gap}{out.plain(text)}")


_COLOURS = {"unchanged": "green", "missing": "red", "modified": "yellow", "not in store": "yellow"}


def _status_lines(report: list[PathStatus]) -> list[tuple[str, str, str]]:
    """(state word, the space after it, the rest) of each line ``data status`` prints."""
    if not report:
        return [("", "", "no tracked data: `shipyard data add PATH` to start")]
    lines = []
    for s in report:
        path = s.path
        if s.state == "unchanged":
            lines.append(("unchanged", " ", path))
        elif s.state == "missing" and not s.in_store:
            lines.append(("missing", "   ", f"{path} (not in the local store either: `shipyard data pull` fetches "
                                            "and restores it)"))
        elif s.state == "missing":
            lines.append(("missing", "   ", f"{path} (restore with `shipyard data checkout {path}`)"))
        elif s.state == "not-in-store":
            lines.append(("not in store", " ", f"{path} (run `shipyard data pull`)"))
        else:
            lines.append(("modified", "  ", f"{path}: {len(s.added)} added, {len(s.modified)} modified, "
                                            f"{len(s.deleted)} deleted"))
            for label, names in (("added", s.added), ("modified", s.modified), ("deleted", s.deleted)):
                lines += [("", "", f"    {label}: {name}") for name in names[:20]]
                if len(names) > 20:
                    lines.append(("", "", f"    ... {len(names) - 20} more {label}"))
    return lines


@app.command("checkout")
def checkout(
    paths: list[Path] = typer.Argument(None, help="Tracked paths to restore (all by default)."),
    force: bool = typer.Option(False, "--force", help="Overwrite local changes that are not in the store."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Restore the versions recorded in shipyard.lock into the working tree."""
    from shipyard.core.workspace import data
    from shipyard.core.workspace.lockfile import load_lock

    ws = workspace()
    with out.progress_bar("restoring", as_json) as advance:
        report = data.checkout(ws, load_lock(ws.root), [str(p) for p in paths or []], force, advance)
    if as_json:
        out.print_json(report)
    else:
        out.console().print(f"{report['paths']} path(s): {report['written']} file(s) written, "
                            f"{report['deleted']} deleted")


def _remote(name: str | None) -> Remote:
    from shipyard.core.project.loader import load_config
    from shipyard.wiring import open_named_remote, settings_from_environment

    root = settings_from_environment().project_root
    return open_named_remote(load_config(root), root, name)


REMOTE_OPTION = typer.Option(None, "--remote", "-r", help="Remote name from shipyard.yaml (default: default_remote).")


@app.command("push")
def push(
    remote: str = REMOTE_OPTION,
    verify: bool = typer.Option(False, "--verify", help="Re-hash every object already on the remote; "
                                "send again any whose bytes do not match (sizes are always checked)."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Send the objects shipyard.lock references (data and stage outputs) to a remote."""
    from shipyard.core.workspace import sync
    from shipyard.core.workspace.lockfile import load_lock

    ws = workspace()
    target = _remote(remote)
    with out.progress_bar("pushing", as_json) as advance:
        report = sync.push(ws, load_lock(ws.root), target, advance, verify=verify)
    if as_json:
        out.print_json(report.to_dict())
        return
    present = report.objects - report.transferred
    checked = "size and hash" if report.verified else "size"
    replaced = f" ({report.replaced} replaced a damaged copy)" if report.replaced else ""
    out.console().print(f"pushed {report.transferred} object(s) to {target.url}{replaced}; "
                        f"{present} already there ({checked} checked)")


@app.command("pull")
def pull(
    remote: str = REMOTE_OPTION,
    force: bool = typer.Option(False, "--force", help="Overwrite local changes that are not in the store."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Fetch the objects shipyard.lock references from a remote (from the store itself when it lives in S3 and
    no --remote is given), then check the data out."""
    from shipyard.core.workspace import data, sync
    from shipyard.core.workspace.lockfile import load_lock
    from shipyard.wiring import settings_from_environment, store_source

    from_store = None if remote else store_source(settings_from_environment())
    ws, source = from_store or (workspace(), _remote(remote))
    lock = load_lock(ws.root)
    with out.progress_bar("pulling", as_json) as advance:
        report = sync.pull(ws, lock, source, advance)
        restored = data.checkout(ws, lock, None, force, advance)
    if as_json:
        out.print_json({**report.to_dict(), **restored})
    else:
        out.console().print(f"fetched {report.transferred} object(s) from {source.url}; "
                            f"{restored['written']} file(s) written, {restored['deleted']} deleted")


@app.command("gc")
def gc(
    grace: str = store.GRACE_OPTION,
    dry_run: bool = store.DRY_RUN_OPTION,
    workspace_only: bool = store.WORKSPACE_ONLY_OPTION,
    remote: str = typer.Option(None, "--remote", "-r", help="Remote name from shipyard.yaml (default: "
                               "default_remote): where the removed objects are looked up, so gc can say whether "
                               "this store held their only copy; with --remote-temp, the remote to clean."),
    remote_temp: bool = typer.Option(False, "--remote-temp", help="Instead: only remove what interrupted uploads "
                                     "left on the remote (older than the grace period); the local store is "
                                     "untouched."),
    as_json: bool = out.JSON_OPTION,
    allow_empty_db: bool = store.ALLOW_EMPTY_DB_OPTION,
    force_short_grace: bool = store.FORCE_SHORT_GRACE_OPTION,
) -> None:
    """Remove stored data that no shipyard.lock in git history (any commit, branch, tag, stash or reflog entry),
    run or model version references, older than the grace period. Prints what it removes and why that is safe."""
    if not remote_temp:
        store.collect(grace, dry_run, as_json, allow_empty_db, workspace_only, remote, force_short_grace)
        return
    target = _remote(remote)
    removed = 0 if dry_run else target.clean_temp(store.seconds(grace))
    if as_json:
        out.print_json({"remote": target.url, "temp_removed": removed, "dry_run": dry_run})
    elif dry_run:
        out.console().print(f"dry run: nothing removed from {target.url}")
    else:
        out.console().print(f"removed {removed} temp file(s) of interrupted uploads from {target.url}")
