"""``shipyard models push`` / ``models pull``: move one version's files between the local store and a remote.

For teams that keep the store local and share the metadata database: the machine that registered a
version pushes it, any other pulls it (or just loads it: a local store falls back on the default
remote for what it lacks). A store that lives in S3 needs neither: every machine reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipyard.config import Settings
    from shipyard.core.registry.objects import Transfer
    from shipyard.core.registry.records import ModelVersion
    from shipyard.ports import MetadataStore, ObjectStore, Progress, Remote

    Move = Callable[[ObjectStore, MetadataStore, ModelVersion, Remote, Progress], Transfer]

REF_ARGUMENT = typer.Argument(..., help="The version: NAME@VERSION, NAME@ALIAS or NAME (its latest version).")
REMOTE_OPTION = typer.Option(None, "--remote", "-r", help="Remote name from shipyard.yaml (default: default_remote, "
                             "or the only one declared).")


def push(ref: str = REF_ARGUMENT, remote: str | None = REMOTE_OPTION, as_json: bool = out.JSON_OPTION) -> None:
    """Upload a version's files, records and run inputs that the remote lacks.

    Another machine sharing the metadata database can then load, serve, verify, reproduce and pull it. The
    inputs of the runs behind it (data, code: what reproduce restores) go too when this store holds them."""
    from shipyard.core.registry import objects

    _transfer("push", ref, remote, as_json, objects.push)


def pull(ref: str = REF_ARGUMENT, remote: str | None = REMOTE_OPTION,
         inputs: bool = typer.Option(False, "--inputs", help="Also the inputs of the runs behind it (data, code): "
                                     "what `shipyard reproduce` restores."),
         as_json: bool = out.JSON_OPTION) -> None:
    """Download a version's files that the local store lacks, each re-hashed as it arrives.

    Needed only to fetch ahead of time (a machine about to go offline, a warm server): load_model, serve,
    verify and reproduce fetch what they lack from the default remote by themselves."""
    from functools import partial

    from shipyard.core.registry import objects

    _transfer("pull", ref, remote, as_json, partial(objects.pull, inputs=inputs))


def _transfer(verb: str, ref: str, remote: str | None, as_json: bool, move: Move) -> None:
    from shipyard.wiring import build, settings_from_environment

    settings = settings_from_environment()
    if settings.store_remote is not None:
        _not_needed(verb, ref, settings, as_json)
        return
    svc = build(settings)
    try:
        mv = svc.registry.resolve(ref)
        target = _remote(settings, remote)
        with out.progress_bar(f"{verb}ing {mv.ref}", as_json) as advance:
            report = move(svc.store, svc.meta, mv, target, advance)
    finally:
        svc.close()
    if as_json:
        out.print_json(report.to_dict())
        return
    done = "pushed" if verb == "push" else "pulled"
    where = "to" if verb == "push" else "from"
    there = "already there" if verb == "push" else "already here"
    replaced = f" ({report.replaced} replaced a copy of the wrong size)" if report.replaced else ""
    out.console().print(out.plain(f"{done} {report.ref} {where} {report.remote}: "
                                  f"{out.plural(report.transferred, 'object')}, {out.size(report.bytes)}{replaced}; "
                                  f"{report.already} of {report.objects} {there}"), soft_wrap=True)
    if report.unavailable:
        first, more = report.unavailable[0], len(report.unavailable) - 1
        out.console().print(out.plain(f"note: {first}{f' and {more} more' if more else ''} of the runs behind "
                                      f"{report.ref} are neither here nor on the remote: it loads and serves, but "
                                      "reproducing it elsewhere needs them (`shipyard data push` where they are)"),
                            soft_wrap=True)


def _remote(settings: Settings, name: str | None) -> Remote:
    from shipyard.core.project.loader import load_config
    from shipyard.wiring import open_named_remote

    root = settings.project_root
    return open_named_remote(load_config(root), root, name)


def _not_needed(verb: str, ref: str, settings: Settings, as_json: bool) -> None:
    url = settings.store_remote.url if settings.store_remote is not None else ""
    note = f"the store is {url}: every machine reads it, so `models {verb}` is not needed; nothing was {verb}ed"
    if as_json:
        out.print_json({"ref": ref, "store": url, "needed": False, "transferred": 0})
    else:
        out.console().print(out.plain(note), soft_wrap=True)
