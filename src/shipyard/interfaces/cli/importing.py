"""``shipyard import``: bring another tool's records over (``shipyard import mlflow URI``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import typer

from shipyard.interfaces.cli import output as out

app = typer.Typer(help="Bring another tool's records over (MLflow's tracking store and registry).",
                  no_args_is_help=True)


@app.command("mlflow")
def mlflow(
    uri: str = typer.Argument(..., help="MLflow's store: a folder (./mlruns), file:///..., sqlite:///mlflow.db or "
                                        "postgresql://..."),
    artifacts: Path = typer.Option(None, "--artifacts", help="The folder MLflow's artifacts are in, when the "
                                   "database's locations are relative or moved (default: ./mlruns beside a SQLite "
                                   "file, or the store folder itself)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be imported; write nothing."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Import experiments, runs (params, metrics with every step, tags, artifacts), registered models with
    their versions and aliases; a re-run imports only what is new."""
    from shipyard.wiring.mlflow_import import import_here

    with _bar(quiet=as_json) as step:
        report = import_here(uri, artifacts, dry_run=dry_run, step=step)
    if as_json:
        out.print_json({**report.to_dict(), "dry_run": dry_run})
        return
    console = out.console()
    verb = "would add" if dry_run else "added"
    added = ", ".join(f"{k}: {n}" for k, n in report.added.items())
    console.print(f"{verb} from {out.plain(report.source)}: {added}", soft_wrap=True)
    skipped = {k: n for k, n in report.skipped.items() if n}
    if skipped:
        console.print("already imported: " + ", ".join(f"{k}: {n}" for k, n in skipped.items()))
    for v in report.versions:
        flag = " (FLAGGED)" if v["flagged"] else ""
        console.print(f"  {out.plain(str(v['ref']))} <- MLflow {out.plain(str(v['mlflow']))}{flag}")
    for line in report.stage_aliases:
        console.print(f"  {out.plain(line)}", soft_wrap=True)
    if report.flagged:
        console.print(f"flagged ({len(report.flagged)}): files changed in MLflow after registration; imported as they "
                      "are now, with no alias:")
        for line in report.flagged:
            console.print(f"  {out.plain(line)}", soft_wrap=True)
        console.print("  (MLflow keeps no digest of a version's files, so their modification times are the evidence: "
                      "a store copied without them, as `cp -r` does, reads as changed everywhere; copy it with "
                      "`cp -a` or `rsync -a`)", soft_wrap=True)
    if report.trust_needed:
        refs = " ".join(report.trust_needed)
        console.print(f"need your trust before they load ({out.plain(refs)}): they are pickles, or name types beyond "
                      "Shipyard's allowlist; check them, then:", soft_wrap=True)
        for v in report.versions:
            if v.get("trust"):
                console.print(f"  shipyard models trust {out.plain(str(v['ref']))} {out.plain(str(v['trust']))} "
                              "-m REASON", soft_wrap=True)
    if report.not_carried:
        console.print(f"not carried over ({len(report.not_carried)}):")
        for what, why in report.not_carried[:50]:
            console.print(f"  {out.plain(what)}: {out.plain(why)}", soft_wrap=True)
        if len(report.not_carried) > 50:
            console.print(f"  ... and {len(report.not_carried) - 50} more (--json lists them all)")


@contextlib.contextmanager
def _bar(quiet: bool) -> Iterator[Callable[[str, int, int], None]]:
    if quiet or not sys.stderr.isatty():
        yield lambda what, done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("importing {task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=out.console(stderr=True), transient=True) as bar:
        tasks: dict[str, object] = {}

        def step(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done)  # type: ignore[arg-type]

        yield step
