"""``shipyard sbom``, ``shipyard scan`` and ``shipyard waive``: the supply chain of a version."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import typer

from shipyard.interfaces.cli import output as out

NOT_CHECKED_EXIT = 13  # no OSV source answered: nothing is known, which is not "clean"
VULNERABLE_EXIT = 14  # a critical or high finding that no unexpired waiver covers


def sbom(
    ref: str = typer.Argument(..., help="NAME@VERSION, NAME@ALIAS or NAME (latest)."),
    image: str = typer.Option(None, "--image", help="Also list the OS packages of this image (Debian/Ubuntu dpkg "
                                                    "status, read without running it)."),
    output: Path = typer.Option(None, "--output", "-o", help="Write the document to this file (default: stdout)."),
    as_json: bool = typer.Option(False, "--json", help="Print the record (digest, packages, path) as JSON instead."),
) -> None:
    """Write a CycloneDX 1.6 SBOM of a model version: its lock's packages (purls), the model itself (a
    machine-learning-model component with its digest and metrics) and the datasets its run read (with their
    digests); with --image, the image's OS packages. The document is validated against the CycloneDX 1.6
    schema, stored, and recorded with the version (`shipyard models history`).

    A dataset is an input of the producing run that is tracked data: a path shipyard.lock lists under data
    (`shipyard data add`), a stage's output, or a folder; a file git tracks (the stage's code) never is. The
    inputs left out are named in a note of the document."""
    from shipyard.core.workspace.atomic import write_atomic
    from shipyard.errors import InvalidInputError
    from shipyard.wiring.supply import make_sbom

    if output is not None:  # said before anything is built or recorded
        where = output.absolute()
        if not where.parent.is_dir():
            raise InvalidInputError(f"-o {output}: {output.parent} is not a folder: create the folder first, or "
                                    "give another path")
        if where.exists() and not where.is_file():
            raise InvalidInputError(f"-o {output} is not a regular file: give a file path, e.g. -o sbom.cdx.json")
    svc = out.services()
    try:
        mv = svc.registry.resolve(ref)
        made = make_sbom(svc, mv, image, os.environ, _steps(as_json))
    finally:
        svc.close()
    if output is not None:
        try:
            write_atomic(output.absolute(), made.document)
        except OSError as exc:
            raise InvalidInputError(f"cannot write -o {output}: {exc.strerror or exc} (the SBOM is stored and "
                                    f"recorded as {made.digest})") from None
    if as_json:
        out.print_json({**made.record(), "model": mv.ref, "path": None if output is None else str(output)})
        return
    line = (f"SBOM of {mv.ref}{f' in {image}' if image else ''}: {made.packages} packages, CycloneDX 1.6 "
            f"(validated), stored as {made.digest}; recorded")
    if output is None:
        sys.stdout.buffer.write(made.document + b"\n")
        out.console(stderr=True).print(out.plain(line))
    else:
        out.console().print(out.plain(f"{line}; written to {output}"))


def scan(
    target: str = typer.Argument(..., help="NAME@VERSION (its lock), or an image (its OS packages and the lock of "
                                           "the version it was built for)."),
    image: str = typer.Option(None, "--image", help="With NAME@VERSION: scan this image of it."),
    db: Path = typer.Option(None, "--db", help="An offline OSV database (a folder of OSV's per-ecosystem exports: "
                                               "PyPI/all.zip ...); only it is asked."),
    osv_url: str = typer.Option(None, "--osv-url", help="The OSV API to ask (default: scan.osv_url in "
                                                        "shipyard.yaml, https://api.osv.dev)."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Check a version's packages against OSV advisories and record the findings with the version.

    The API (scan.osv_url) is asked first, then the offline database scan.db if set; --db asks only that
    database. Waivers (`shipyard waive`) are applied to what is shown.

    Exit codes: 0 checked, nothing critical or high unwaived; 13 not checked (no source answered: the
    result is unknown, never "clean"); 14 a critical or high finding without a waiver.
    """
    from shipyard.wiring.supply import run_scan

    svc = out.services()
    try:
        result = run_scan(svc, target, image=image, db=db, osv_url=osv_url, progress=_steps(as_json))
    finally:
        svc.close()
    blocking = result.blocking()
    if as_json:
        out.print_json(result.to_dict())
    else:
        _show(result)
    if not result.checked:
        raise typer.Exit(NOT_CHECKED_EXIT)
    if blocking:
        raise typer.Exit(VULNERABLE_EXIT)


def _show(result: object) -> None:
    from shipyard.wiring.supply import ScanResult

    assert isinstance(result, ScanResult)
    con = out.console()
    where = result.model.ref if result.model is not None else result.target
    place = f" in {result.image}" if result.image else ""
    if not result.recorded:
        con.print(out.plain(f"note: no version is known to be built as {result.target} (no build record): the "
                            "result is printed, not recorded"))
    if not result.checked:
        reasons = "; ".join(result.errors) or "no source to ask"
        con.print(out.plain(f"NOT CHECKED: {where}{place}: no OSV source answered ({reasons}); its "
                            f"{result.packages} packages are neither clean nor vulnerable"))
        return
    for note in result.errors:
        con.print(out.plain(f"warning: {note}"))
    rows = result.rows()
    if rows:
        out.table(f"{len(rows)} known {'vulnerability' if len(rows) == 1 else 'vulnerabilities'} in {where}{place}",
                  [out.Col("id", ident=True), out.Col("package", ident=True), out.Col("version", ident=True),
                   out.Col("severity", ident=True), "fixed in", out.Col("waived", ident=True),
                   out.Col("summary", drop=1)],
                  [[r["id"], r["package"], r["version"], r["severity"], ", ".join(r["fixed"]) or "-",
                    f"until {r['waiver']['expires']}" if r["waived"] else "no", r["summary"]] for r in rows])
    blocking = result.blocking()
    told = f"{len(blocking)} critical or high not waived" if blocking else \
        ("no known vulnerabilities" if not rows else "nothing critical or high without a waiver")
    con.print(out.plain(f"{where}{place}: {result.packages} packages checked against {result.source}: {told}"
                        f"{'; recorded' if result.recorded else ''}"))


def waive(
    ref: str = typer.Argument(..., help="NAME@VERSION, NAME@ALIAS or NAME (latest)."),
    advisory: str = typer.Argument(..., help="The OSV id (GHSA-..., PYSEC-..., CVE-...; an alias works too)."),
    reason: str = typer.Option(..., "--reason", help="Why it does not apply, or can wait (required)."),
    expires: str = typer.Option(..., "--expires", help="YYYY-MM-DD, in the future and at most a year ahead."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Waive one advisory for a version, with a reason and an expiry: until then `scan` and the policy do not
    count it. Recorded with the version (`shipyard models history`); it expires by itself. Waivers are per
    version: a new version needs its own. Waiving an advisory again replaces the earlier waiver; an id that no
    recorded scan of the version found is recorded with a warning (check for a typo)."""
    from shipyard.wiring.supply import record_waiver

    svc = out.services()
    try:
        done = record_waiver(svc, ref, advisory, reason, expires)
    finally:
        svc.close()
    if as_json:
        out.print_json(done.to_dict())
        return
    waiver = done.waiver
    out.console().print(out.plain(f"waived {waiver.id} for {done.model.ref} until {waiver.expires.isoformat()} "
                                  f"(by {waiver.by}): {waiver.reason}"))
    err = out.console(stderr=True)
    for note in done.notes:
        err.print(out.plain(note))


def _steps(as_json: bool) -> Callable[[str], None]:
    err = out.console(stderr=True)

    def step(text: str) -> None:
        if not as_json:
            err.print(f"[dim]{out.plain(text)}[/dim]")

    return step
