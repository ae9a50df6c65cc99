"""``shipyard monitor``: a version's drift, data quality and traffic, from its inference logs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.core.monitoring.summary import MonitorReport

EXIT_DRIFT = 16  # --fail-on drift: a feature (or output) drifted from the reference
EXIT_QUALITY = 17  # --fail-on quality: a feature has missing, out-of-range or unseen values past the threshold
EXIT_NOTHING = 18  # --fail-on given, and the period holds too few rows to judge anything
FAIL_ON = ("drift", "quality")


def monitor(
    ref: str = typer.Argument(..., help="MODEL@VERSION, MODEL@ALIAS (the version it points at now), or MODEL for "
                                        "its latest version."),
    since: str = typer.Option("24h", "--since", help="How far back to look: 30m, 24h, 7d."),
    logs: list[Path] = typer.Option(None, "--logs", help="A .jsonl inference log, or a folder of them (copied "
                                                         "from a pod, say), read besides the store's; repeatable."),
    html_path: Path = typer.Option(None, "--html", help="Also write a self-contained HTML report with plots "
                                                        "there (never over a file that is not a report)."),
    fail_on: list[str] = typer.Option(None, "--fail-on", help="drift, quality, or both (comma-separated or "
                                                              "repeated): exit 16 when a feature drifted, 17 when "
                                                              "one has a data-quality issue, 18 when the period "
                                                              "holds too few rows to judge."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Drift and data quality of a version's traffic against its reference profile, from its inference logs.

    Reads the logs of the version's server runs (`shipyard serve --log`: drift windows, request records and, with
    --log-payloads, payloads) from the store, those not yet published on this machine, and any given with --logs.
    The version needs a reference profile: log_model(..., reference=X_train). Prints per feature its drift score
    (PSI for numbers, Jensen-Shannon distance for categories) and verdict, with the period's rows, requests,
    error share and p50/p99 latency.

    A feature drifted when its PSI is above 0.2 (its JS distance above 0.1) over at least 100 rows; it has a
    data-quality issue when more than 5% of its values are missing (beyond the reference's rate), outside the
    reference's range, or categories the reference never had. shipyard.yaml's monitoring: psi, js, min_rows and
    quality change these.

    Exit codes with --fail-on: 16 drift, 17 data quality (drift wins when both), 18 nothing to check.
    """
    from shipyard.errors import InvalidInputError
    from shipyard.wiring.monitoring import check_report_path, monitor, write_report

    wanted = {w.strip() for given in fail_on or () for w in given.split(",") if w.strip()}
    if not wanted <= set(FAIL_ON) or (fail_on and not wanted):
        raise InvalidInputError(f"--fail-on takes drift, quality or both (comma-separated), not "
                                f"{','.join(sorted(wanted - set(FAIL_ON))) or 'nothing'}")
    target = html_path.absolute() if html_path is not None else None
    if target is not None:
        check_report_path(target)
    svc = out.services()
    try:
        mv = svc.registry.resolve(ref)
        report = monitor(svc, mv, since=since, logs=logs or ())
    finally:
        svc.close()
    written = write_report(report, target) if target is not None else None
    if as_json:
        out.print_json({**report.to_dict(), "report": None if written is None else str(written)})
    else:
        print_report(report)
        if written is not None:
            out.console().print(f"report: {out.plain(str(written))}")
    code = exit_code(report, wanted)
    if code == EXIT_NOTHING:
        why = (f"drift needs {report.thresholds.min_rows} rows of a feature" if "drift" in wanted
               else "data quality needs a row")
        out.console(stderr=True).print(out.plain(f"nothing to check: {report.rows} rows of {report.ref} in the "
                                                 f"period, and {why}; look back further with --since, or give "
                                                 "--logs"))
    if code:
        raise typer.Exit(code)


def exit_code(report: MonitorReport, wanted: set[str]) -> int:
    """What ``--fail-on`` makes of ``report``: 0, EXIT_DRIFT, EXIT_QUALITY or EXIT_NOTHING."""
    if not wanted:
        return 0
    features = report.features
    if "drift" in wanted and any(f.drifted for f in features):
        return EXIT_DRIFT
    if "quality" in wanted and any(f.quality_issue for f in features):
        return EXIT_QUALITY
    # a check that could not be made does not pass: drift needs min_rows rows of a feature, quality one
    if ("drift" in wanted and not any(f.rows >= report.thresholds.min_rows for f in features)) or \
            ("quality" in wanted and not any(f.rows for f in features)):
        return EXIT_NOTHING
    return 0


def span(seconds: float) -> str:
    """A period as --since writes it: 7d, 24h, 30m, or seconds."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0 and (unit != "d" or seconds > 86400):
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def print_report(report: MonitorReport) -> None:
    """The summary lines and the drift table of ``report`` on stdout, as ``shipyard monitor`` prints them."""
    from shipyard.core.monitoring.summary import iso

    c = out.console()
    p50, p99 = report.latency()
    share = report.error_share()
    c.print(out.plain(f"{report.ref}: {report.verdict} over the last {span(report.period.end - report.period.start)} "
                      f"({iso(report.period.start)} to {iso(report.period.end)})"))
    c.print(out.plain(f"reference: {report.baseline.profile[:19]} ({report.baseline.rows} rows)"))
    payloads = f", {report.payload_rows} of them counted from logged payloads" if report.payload_rows else ""
    windows = len(report.windows)
    c.print(out.plain(f"rows: {report.rows} in {windows} window{'' if windows == 1 else 's'}{payloads}"))
    traffic = f"requests: {len(report.requests)} logged"
    if share is not None and p50 is not None and p99 is not None:
        traffic += f", {share:.2%} errors, latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    c.print(out.plain(traffic))
    skipped = [(n, what) for n, what in (
        (report.skipped.bad, "bad lines"), (report.skipped.torn, "torn last lines"),
        (report.skipped.other_bins, "windows on other bins"), (report.skipped.outside, "records outside the period"),
        (report.skipped.duplicate, "duplicate lines"), (report.skipped.over_limit, "requests over the limit"),
        (report.skipped.files, "files")) if n]
    if skipped:
        c.print(out.plain("skipped: " + ", ".join(f"{n} {what}" for n, what in skipped)))
    if report.skipped.payload_rows:
        c.print(out.plain(f"counted once: {report.skipped.payload_rows} logged payload rows are in the server's drift "
                          "windows already"))
    for note in report.notes:
        c.print(out.plain(f"note: {note}"))
    if report.rows == 0 and not report.windows:
        c.print(out.plain(f"no rows of {report.ref} in the period: its servers log them as they serve it "
                          f"(`shipyard serve {report.ref}`); give logs copied from elsewhere with --logs"))
    out.table(None, [out.Col("feature"), out.Col("side", ident=True, drop=2), out.Col("statistic", ident=True),
                     out.Col("score", ident=True), out.Col("verdict", ident=True), out.Col("missing", ident=True),
                     out.Col("out of range", ident=True, drop=1), out.Col("unseen", ident=True, drop=1)],
              ([f.feature, f.side, f.statistic, "-" if f.score is None else f"{f.score:.4f}", f.label,
                f.missing, f.out_of_range, f.unseen] for f in report.features))
