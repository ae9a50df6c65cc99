"""``shipyard runs``: list, search and inspect recorded runs, and get their logged files back."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.interfaces.cli import output as out

app = typer.Typer(help="List, search and inspect recorded runs; get their files back.", no_args_is_help=True)


@app.command("list")
def list_runs(
    where: str = typer.Option(None, "--where", "-w",
                              help="Filter, e.g. \"metrics.accuracy > 0.9 and params.C = '1.0'\"."),
    order_by: str = typer.Option(None, "--order-by", help="start_time, end_time, name or metrics.KEY; "
                                                          "add ' asc' for ascending (default descending)."),
    limit: int = typer.Option(50, "--limit", "-n", help="Show at most this many runs."),
    metric: list[str] = typer.Option(None, "--metric", "-m",
                                     help="A metric column to show (repeatable), in this order; by default every "
                                          "metric, the ones most runs have first, as many as fit."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """List runs, newest first."""
    svc = out.services()
    runs = svc.tracker.search(where, limit, order_by)
    if as_json:
        out.print_json([{**r.to_dict(), "status": str(svc.tracker.status_of(r))} for r in runs])
        return
    if not runs:
        out.console().print("no runs match" if where else "no runs recorded yet: try `shipyard demo`")
        return
    metric_keys = out.metric_columns((r.metrics for r in runs), metric)
    counts = svc.meta.metric_counts([r.id for r in runs])
    width = out.id_width(r.id for r in runs)
    out.table(
        None,
        [out.Col("run", ident=True), "name", out.Col("status", ident=True), out.Col("started", ident=True, drop=3),
         out.Col("duration", ident=True, drop=5),  # hidden first; then metrics beyond the first two, then started
         *(out.Col(k, drop=1 if i == 0 else 2 if i == 1 else 4) for i, k in enumerate(metric_keys))],
        ([r.id[:width], r.name, str(svc.tracker.status_of(r)), out.when(r.start_time),
          out.duration(r.start_time, r.end_time),
          *(out.series(r.metrics[k], counts.get(r.id, {}).get(k, 1)) if k in r.metrics else ""
            for k in metric_keys)] for r in runs),
        hint="--metric KEY picks the metric columns, --json shows all",
    )


@app.command("show")
def show_run(
    run_id: str = typer.Argument(..., help="A run id or a unique prefix of one (at least 4 characters)."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Show one run: params, metrics, inputs, artifacts, code version and environment."""
    svc = out.services()
    run = svc.tracker.get_run(run_id)
    status = svc.tracker.status_of(run)
    if as_json:
        out.print_json({**run.to_dict(), "status": str(status)})
        return
    c = out.console()
    c.print(f"[bold]{out.plain(run.name)}[/bold]  {run.id}")  # a name is data, never markup
    code = run.code
    commit = (f"{code.commit[:12]}{' (dirty)' if code.dirty else ''}" if code.commit
              else "no commit yet" if code.repo else "not in a git repository")
    out.table(None, [out.Col("field", ident=True), "value"], [
        ("status", status), ("experiment", run.experiment), ("started", out.when(run.start_time, seconds=True)),
        ("duration", out.duration(run.start_time, run.end_time)), ("user", run.user),
        ("host / pid", f"{run.host} / {run.pid}"), ("git commit", commit),
        ("environment", out.short(run.env_digest)), ("parent run", run.parent_id or "-"),
    ])
    if run.params:
        out.table("params", ["key", "value"], sorted(run.params.items()))
    if run.metrics:
        rows = []
        for key, last in sorted(run.metrics.items()):
            values = [m.value for m in svc.meta.metric_history(run.id, key)] or [last]
            rows.append((key, out.number(last), *((out.number(min(values)), out.number(max(values)), len(values))
                                                  if len(values) > 1 else ("", "", 1))))
        series = any(r[-1] != 1 for r in rows)
        out.table("metrics" + (" (a series shows its last value)" if series else ""),
                  ["key", "value", *(["min", "max", "values"] if series else [])],
                  (r if series else r[:2] for r in rows))
    if run.tags:
        out.table("tags", ["key", "value"], sorted(run.tags.items()))
    if run.inputs:  # what a stage read, by digest (its dependencies)
        out.table("inputs", [out.Col("path", ident=True), out.Col("digest", ident=True)],
                  ((path, out.short(d)) for path, d in sorted(run.inputs.items())))
    if run.artifacts:
        out.table("artifacts", ["path", "digest", "size"],
                  ((a.path + ("/" if a.is_dir else ""), out.short(a.digest), out.size(a.size))
                   for a in run.artifacts))


@app.command("get")
def get_files(
    run_id: str = typer.Argument(..., help="A run id or a unique prefix of one (at least 4 characters)."),
    path: str = typer.Argument("", help="A logged file or folder (as `runs show` lists it); none: every file."),
    output: Path = typer.Option(Path("."), "--output", "-o", metavar="DIR",
                                help="The folder to write into, at the same path (DIR/PATH)."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Write a run's logged file or folder into a local folder, every byte checked against its digest."""
    from shipyard.core.lineage.run_files import download

    svc = out.services()
    run = svc.tracker.get_run(run_id)
    local, files = download(svc.store, run, path, output)
    if as_json:
        out.print_json({"run": run.id, "path": path.strip("/"), "local": str(local), "files": files})
        return
    out.console().print(f"wrote {len(files)} file{'' if len(files) == 1 else 's'} of run {run.id[:8]} to "
                        f"{out.plain(str(local))}")
