"""``shipyard verify``: a version's golden examples in a fresh environment (or the current one), pass or fail."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.core.environments.golden import Check
    from shipyard.core.registry.records import ModelVersion
    from shipyard.wiring import Services, VerifyRequest


def verify(
    ref: str | None = typer.Argument(None, help="The version to check: NAME@V, NAME@ALIAS or NAME (its latest)."),
    overrides: list[str] = typer.Option([], "--with", metavar="PKG==X",
                                        help="Install this instead of the locked version (repeatable): "
                                             "test an upgrade before it breaks CI."),
    python: str | None = typer.Option(None, "--python", metavar="3.X",
                                      help="The Python to build the environment with: 3.X (uv finds or fetches it) "
                                           "or a path to a Python."),
    find_links: list[Path] = typer.Option([], "--find-links", metavar="DIR",
                                          help="A folder of wheels to install from as well (private packages)."),
    current: bool = typer.Option(False, "--current", help="Check in this environment, in-process: no new one."),
    every: bool = typer.Option(False, "--all", help="Check every registered model's latest (or --alias) version."),
    alias: str | None = typer.Option(None, "--alias", help="With --all: the version each model's alias names."),
    image: str | None = typer.Option(None, "--image", metavar="IMAGE",
                                     help="Check inside this container image (`shipyard build` makes one): run "
                                          "it as a throwaway container and post the examples to its HTTP "
                                          "endpoint, as production will."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Run a model version's golden examples in an environment built from its lock (plus --with overrides)
    and compare the answers with the stored ones: labels exactly, floats within the version's tolerance.

    Exits non-zero when an answer differs, the model does not load, or the environment cannot be installed.
    The outcome is recorded with the version (`shipyard models history NAME` lists it).
    """
    from shipyard.errors import InvalidInputError
    from shipyard.wiring import VerifyRequest, check_overrides, check_python, verify_early

    if every == (ref is not None):
        raise InvalidInputError("give a version to verify (NAME@V), or --all for every registered model")
    if alias is not None and not every:
        raise InvalidInputError("--alias goes with --all; for one model give NAME@ALIAS")
    if current and (overrides or python or find_links):
        raise InvalidInputError("--current checks this environment as it is: --with, --python and --find-links "
                                "build another one, so they cannot go with it")
    if image is not None and (current or every or overrides or python or find_links):
        raise InvalidInputError("--image checks the image as it was built: --current, --all, --with, --python "
                                "and --find-links cannot go with it")
    for folder in find_links:
        if not folder.is_dir():
            raise InvalidInputError(f"--find-links {folder}: not a folder")
    request = VerifyRequest(check_overrides(overrides), check_python(python), tuple(find_links), current)
    # one version in a venv: its model process starts now, in the environment it used last time (if any)
    hint, early = verify_early(ref, request) if ref is not None and not every else ("", None)
    try:
        svc = out.services()
    except BaseException:
        if early is not None:
            early.close()
        raise
    try:
        if image is not None:
            assert ref is not None
            failed = _verify_image(svc, ref, image, as_json)
        elif every:
            failed = _verify_all(svc, request, alias, as_json)
        else:
            assert ref is not None
            failed = not verify_one(svc, ref, request, as_json, early, hint).passed
    finally:
        if early is not None:
            early.close()
        svc.close()
    if failed:
        raise typer.Exit(1)


# uv's lines about the interpreter and the temp folder it builds in: what was installed is what matters
UV_CHATTER = ("Using CPython", "Using Python", "Creating virtual environment", "Activate with")


def _progress(as_json: bool) -> Any:
    if as_json:
        return lambda _: None
    err = out.console(stderr=True)

    def show(line: str) -> None:
        if line.strip() and not line.lstrip().startswith(UV_CHATTER):
            err.print(f"[dim]  uv: {out.plain(line.strip())}[/dim]")

    return show


def verify_one(svc: Services, ref: str, request: VerifyRequest, as_json: bool, early: Any = None,
                hint: str | None = None) -> Check:
    """``early``: the model process ``verify_early`` started (a venvs.Child, which this layer does not import)."""
    from shipyard.wiring import verify_version

    mv = svc.registry.resolve(ref)
    if not as_json:
        where = "this environment" if request.current else "an environment built from its lock"
        extra = (" with " + " ".join(request.overrides)) if request.overrides else ""
        out.console(stderr=True).print(f"verifying {out.plain(mv.ref)} in {where}{out.plain(extra)}")
    start = time.perf_counter()
    _, check = verify_version(svc, mv, request, _progress(as_json), early=early, hint=hint)
    seconds = time.perf_counter() - start
    if as_json:
        out.print_json({"model": mv.model, "version": mv.version, "seconds": round(seconds, 3),
                        **check.to_record(_version())})
        return check
    _show(mv, check, seconds)
    return check


def _verify_image(svc: Services, ref: str, image: str, as_json: bool) -> bool:
    import os

    from shipyard.wiring import verify_image

    mv = svc.registry.resolve(ref)
    if not as_json:
        out.console(stderr=True).print(f"verifying {out.plain(mv.ref)} in the image {out.plain(image)} "
                                       "(a throwaway container, through its HTTP endpoint)")
    start = time.perf_counter()
    _, check = verify_image(svc, mv, image, os.environ)
    seconds = time.perf_counter() - start
    if as_json:
        out.print_json({"model": mv.model, "version": mv.version, "seconds": round(seconds, 3), "image": image,
                        **check.to_record(_version())})
    else:
        _show(mv, check, seconds)
    return not check.passed


def _version() -> str:
    from shipyard import __version__

    return __version__


def _show(mv: ModelVersion, check: Check, seconds: float) -> None:
    c = out.console()
    where = {"venv": "venv", "current": "the current environment"}.get(check.target, check.target)
    if check.target == "image" and check.environment:
        where = f"image {check.environment.split()[0]}"
    if check.target == "venv" and check.environment:
        where += f" {out.short(check.environment)}"
        where += "" if check.reused is None else " (cached)" if check.reused else " (new)"
    facts = ", ".join(x for x in (f"python {check.python}" if check.python else "",
                                  " ".join(check.overrides), f"{seconds:.1f} s") if x)
    mark = {"pass": "[green]pass[/green]", "fail": "[red]FAIL[/red]"}.get(check.status, f"[red]{check.status}[/red]")
    c.print(f"{mark} {out.plain(mv.ref)} in {out.plain(where)} ({out.plain(facts)})")
    c.print(f"  {out.plain(check.describe())}")
    if check.verdict is not None and check.verdict.worst:
        out.table("worst differences", [out.Col("example", ident=True), "expected", "got", "relative error"], [
            (out.plain(d.where), out.plain(_text(d.expected)), out.plain(_text(d.got)),
             f"{d.error:.3g}" if d.error is not None else d.reason)
            for d in check.verdict.worst])


def _text(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _verify_all(svc: Services, request: VerifyRequest, alias: str | None, as_json: bool) -> bool:
    from shipyard.core.registry.refs import ModelRef
    from shipyard.errors import NotFoundError, ShipyardError
    from shipyard.wiring import verify_version

    rows: list[dict[str, Any]] = []
    progress = _progress(as_json)
    err = out.console(stderr=True)
    for model in svc.registry.models():
        ref = f"{model.name}@{alias}" if alias else model.name
        try:
            mv = svc.registry.resolve(ModelRef.parse(ref))
        except NotFoundError:
            continue  # this model has no such alias: nothing to check
        if not as_json:
            err.print(f"verifying {out.plain(mv.ref)}")
        try:
            _, check = verify_version(svc, mv, request, progress)
        except ShipyardError as exc:  # no golden examples, untrusted, ...: this model's row says so
            rows.append({"model": mv.model, "version": mv.version, "status": "error", "detail": str(exc)})
            continue
        worst = check.verdict.worst[0].describe() if check.verdict and check.verdict.worst else check.reason
        rows.append({"model": mv.model, "version": mv.version, "status": check.status, "detail": worst,
                     "record": check.to_record(_version())})
    failed = any(r["status"] != "pass" for r in rows)
    if as_json:
        out.print_json({"overrides": list(request.overrides), "passed": not failed, "models": rows})
        return failed
    if not rows:
        out.console().print("no registered model to verify" + (f" (none has the alias {alias!r})" if alias else ""))
        return False
    out.table(None, [out.Col("model", ident=True), out.Col("version", ident=True), out.Col("result", ident=True),
                     "worst difference"],
              [(out.plain(r["model"]), r["version"], r["status"], out.plain(r["detail"] or "-")) for r in rows])
    return failed
