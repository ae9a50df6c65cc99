"""``shipyard exp show``, ``shipyard metrics diff`` and ``shipyard params diff``: experiments compared, as in DVC."""

from __future__ import annotations

import csv
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.core.lineage.experiments import Experiment
    from shipyard.core.lineage.valuediff import Change

app = typer.Typer(help="Experiments: pipeline runs with the params and metrics of all their stages.",
                  no_args_is_help=True)
metrics_app = typer.Typer(help="Metrics files compared between commits, the workspace, runs and model versions.",
                          no_args_is_help=True)
params_app = typer.Typer(help="Params compared between commits, the workspace, runs and model versions.",
                         no_args_is_help=True)

REV_A = typer.Argument(None, help="The old side: a git revision (HEAD, HEAD~1, a branch, a commit), 'workspace', "
                                  "a run id, a pipeline run id (exp show) or a model version (iris@3). "
                                  "Default: HEAD.")
NO_RUNS = ("no pipeline runs recorded yet: a `shipyard run` in which a stage runs records one; a run where every "
           "stage was up to date or came from the cache (as right after `shipyard init --from-dvc`) records none: "
           "`shipyard run --force` runs them all once")
REV_B = typer.Argument(None, help="The new side, named the same ways. Default: the workspace.")
ALL_OPTION = typer.Option(False, "--all", "-a", help="Show unchanged values too.")
MD_OPTION = typer.Option(False, "--md", help="Print a Markdown table (for a pull request comment).")


@app.command("show")
def show(
    where: str = typer.Option(None, "--where", "-w",
                              help="Filter, e.g. \"metrics.acc > 0.9 and params.train.lr = '0.1'\"."),
    order_by: str = typer.Option(None, "--order-by", "--sort-by",
                                 help="time, commit, metrics.KEY or params.KEY; add ' asc' for ascending "
                                      "(default descending: newest first)."),
    limit: int = typer.Option(50, "--limit", "-n", help="Show at most this many pipeline runs."),
    as_json: bool = out.JSON_OPTION,
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV: one line per pipeline run, every column."),
) -> None:
    """One row per pipeline run (one `shipyard run`), newest first, across commits: its commit, time, and the
    params and metrics of all its stages, joined; stages that were up to date or came from the cache show the
    values of the run that made their result."""
    from shipyard.wiring.experiments import experiments

    svc = out.services()
    try:
        rows = experiments(svc, where, order_by, limit)
    finally:
        svc.close()
    if as_json:
        out.print_json([e.to_dict() for e in rows])
        return
    if as_csv:
        _csv(rows)
        return
    if not rows:
        out.console().print("no pipeline runs match" if where else NO_RUNS)
        return
    show_table(rows)


def _columns(rows: Sequence[Experiment]) -> tuple[list[str], list[str]]:
    from shipyard.core.lineage.experiments import columns

    return columns(rows)


def _csv(rows: Sequence[Experiment]) -> None:
    params, metrics = _columns(rows)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    shown = out.printable  # a key or value from a params file someone else wrote: no escape sequence goes out raw
    writer.writerow(["id", "commit", "dirty", "time", "status", *(shown(f"params.{k}") for k in params),
                     *(shown(f"metrics.{k}") for k in metrics)])
    for e in rows:
        writer.writerow([e.id, e.commit or "", e.dirty, out.when(e.start_time, seconds=True), e.status,
                         *(shown(e.params.get(k, "")) for k in params),
                         *(repr(e.metrics[k]) if k in e.metrics else "" for k in metrics)])


def show_table(rows: Sequence[Experiment]) -> None:
    """The pipeline runs as a table that fits the terminal (what differs between the rows is shown first)."""
    params, metrics = _columns(rows)
    # what differs between the rows is what a comparison is for: those columns come first and are hidden last
    params = sorted(params, key=lambda k: not _varies(k, [e.params for e in rows]))
    metrics = sorted(metrics, key=lambda k: not _varies(k, [e.metrics for e in rows]))
    width = out.id_width(e.id for e in rows)
    # when too wide, hidden first: the status, params then metrics that are the same in every row, params past
    # the first two, the time, metrics past the first two, then the first two params
    cols: list[str | out.Col] = [
        out.Col("pipeline run", ident=True), out.Col("commit", ident=True), out.Col("time", ident=True, drop=4),
        out.Col("status", ident=True, drop=8),
        *(out.Col(out.printable(k), drop=(1 if i < 2 else 3) if _varies(k, [e.metrics for e in rows]) else 6)
          for i, k in enumerate(metrics)),
        *(out.Col(out.printable(k), drop=(2 if i < 2 else 5) if _varies(k, [e.params for e in rows]) else 7)
          for i, k in enumerate(params)),
    ]
    out.table(None, cols, ([
        e.id[:width], (e.commit[:8] + ("+" if e.dirty else "")) if e.commit else "-", out.when(e.start_time),
        e.status, *(out.number(e.metrics[k]) if k in e.metrics else "" for k in metrics),
        *(out.printable(e.params.get(k, "")) for k in params)] for e in rows),
        hint="--json or --csv show all; --where and --order-by pick rows")


def _varies(key: str, values: Sequence[Mapping[str, Any]]) -> bool:
    return len({repr(v.get(key)) for v in values}) > 1


@metrics_app.command("diff")
def metrics_diff(
    a_rev: str = REV_A,
    b_rev: str = REV_B,
    show_all: bool = ALL_OPTION,
    as_json: bool = out.JSON_OPTION,
    as_md: bool = MD_OPTION,
) -> None:
    """Compare metrics: of the metrics files (top-level and the stages') between two revisions, or of runs and
    model versions. No argument: HEAD against the workspace; one: that revision against the workspace."""
    _diff("metrics", a_rev, b_rev, show_all, as_json, as_md)


@params_app.command("diff")
def params_diff(
    a_rev: str = REV_A,
    b_rev: str = REV_B,
    show_all: bool = ALL_OPTION,
    as_json: bool = out.JSON_OPTION,
    as_md: bool = MD_OPTION,
) -> None:
    """Compare params: the keys the stages use from their params files (and the files of the top-level
    `params:` list) between two revisions, or the params of runs and model versions. No argument: HEAD against
    the workspace; one: that revision against the workspace."""
    _diff("params", a_rev, b_rev, show_all, as_json, as_md)


def _diff(what: str, a_rev: str | None, b_rev: str | None, show_all: bool, as_json: bool, as_md: bool) -> None:
    from shipyard.core.lineage.valuediff import align, diff
    from shipyard.wiring.experiments import metrics_side, params_side
    from shipyard.wiring.revisions import open_revisions

    revs = open_revisions()
    side = metrics_side if what == "metrics" else params_side
    old, new = side(revs, a_rev or "HEAD"), side(revs, b_rev)
    old_values = align(old.values.get("", {}), new.values) if old.recorded else old.values
    new_values = align(new.values.get("", {}), old_values) if new.recorded else new.values
    changes = diff(old_values, new_values, show_all)
    if as_json:
        out.print_json({"old": old.label, "new": new.label, "changes": [c.to_dict() for c in changes]})
        return
    if not changes:
        out.console().print(f"no {what} changed between {old.label} and {new.label}" if not show_all else
                            f"no {what} in {old.label} or {new.label}")
        return
    header = ["path", "key" if what == "params" else "metric", old.label, new.label, "change"]
    rows = [[out.printable(c.path) or "(recorded)", out.printable(c.key), _shown(c.old), _shown(c.new), _change(c)]
            for c in changes]
    if as_md:
        _markdown(header, rows)
        return
    out.table(None, [out.Col("path", drop=2), header[1], out.Col(old.label, drop=1), new.label,
                     out.Col("change", drop=3)], rows)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return out.number(value)
    return out.printable(str(value))  # a params file's text: control characters shown escaped


def _change(c: Change) -> str:
    if c.change is not None:
        return f"{c.change:+.6g}" if c.change else "0"
    if c.old is None or c.new is None:
        return "added" if c.old is None else "removed"
    return "changed" if c.changed else ""


def _markdown(header: list[str], rows: list[list[str]]) -> None:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    sys.stdout.write("\n".join(lines) + "\n")
