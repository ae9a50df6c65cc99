"""``shipyard env``: the environment a run or model version was made in, what differs between two, a model's
lock (its pinned requirements) and whether a target environment can run it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.wiring import Services

app = typer.Typer(help="Environment fingerprints (Python, OS, CPU, GPU, framework builds, packages); a model's "
                       "lock, and whether a target can run it.", no_args_is_help=True)

REF_HELP = "A run id (or a unique prefix of one), a model version NAME@V / NAME@ALIAS, or `current`."


def load(ref: str, svc: Services | None = None) -> tuple[str, dict[str, Any]]:
    """(what it is, its environment record) for ``ref``."""
    from shipyard.errors import InvalidInputError, InvalidReferenceError, NotFoundError

    if ref == "current":
        from shipyard.wiring import current_environment, settings_from_environment

        return "the current environment", current_environment(settings_from_environment(anywhere=True))
    svc = svc or out.services()
    if "@" in ref:
        mv = svc.registry.resolve(ref)
        label, digest = f"{mv.name}@{mv.version}", mv.env_digest
    else:
        try:
            run = svc.tracker.get_run(ref)
        except (NotFoundError, InvalidInputError) as run_error:  # "iris" or "ir": a model name, perhaps
            try:
                mv = svc.registry.resolve(ref)
            except (NotFoundError, InvalidReferenceError):
                if isinstance(run_error, InvalidInputError) and len(ref) >= 4 and ref.isalnum():  # ambiguous
                    raise run_error from None
                raise NotFoundError(f"no run or model {ref!r}: give a run id (`shipyard runs list`), "
                                    "NAME@VERSION (`shipyard models list`) or `current`") from None
            label, digest = f"{mv.name}@{mv.version}", mv.env_digest
        else:
            label, digest = f"run {run.id}", run.env_digest
    if digest is None:
        raise NotFoundError(f"{label} recorded no environment")
    from shipyard.wiring import stored_environment

    return label, stored_environment(svc.store, digest, label)


@app.command("show")
def show(
    ref: str = typer.Argument(..., help=REF_HELP),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Show an environment: Python, OS, CPU, GPU, framework builds and every package with its source."""
    from shipyard.core.environments.capture import packages_of, source_text

    label, env = load(ref)
    if as_json:
        out.print_json(env)
        return
    c = out.console()
    c.print(f"[bold]{out.plain(label)}[/bold]  {out.plain(str(env.get('schema')))}")
    py, osinfo, cpu = env.get("python") or {}, env.get("os") or {}, env.get("cpu") or {}
    rows: list[tuple[str, Any]] = [
        ("python", f"{py.get('version')} ({py.get('implementation')})"),
        ("os", f"{osinfo.get('system')} {osinfo.get('release')} {osinfo.get('machine')}, libc {osinfo.get('libc')}"),
        ("cpu", f"{cpu.get('model') or '-'} x {cpu.get('count')}"
                + (f", {len(cpu['flags'])} flags" if cpu.get("flags") else "")),
    ]
    if "gpu" in env:
        gpu = env["gpu"]
        if isinstance(gpu, dict):
            models = ", ".join(sorted({f"{d.get('name')} (sm {d.get('compute_capability') or '?'})"
                                       for d in gpu.get("devices", [])}))
            rows.append(("gpu", f"{gpu.get('count')} x {models}, driver {gpu.get('driver')}"))
        else:
            rows.append(("gpu", f"none ({env.get('gpu_absent') or 'not found'})"))
    else:
        rows.append(("gpu", "not recorded (an older record)"))
    out.table(None, [out.Col("field", ident=True), "value"], [(k, out.plain(str(v))) for k, v in rows])
    frameworks = env.get("frameworks") or {}
    if frameworks:
        out.table("frameworks", ["framework", "version", "build"], [
            (name, out.plain(str(fw.get("version"))),
             out.plain(", ".join(f"{k} {_value(v)}" for k, v in sorted(fw.items())
                                 if k != "version" and v not in (None, [], {}))))
            for name, fw in sorted(frameworks.items())])
    packages = packages_of(env)
    out.table(f"packages ({len(packages)})", [out.Col("package", ident=True), "version", "source"],
              [(out.plain(n), out.plain(str(p.get("version"))), out.plain(source_text(p.get("source"))))
               for n, p in packages.items()])


def _value(v: Any) -> str:
    if isinstance(v, list):
        return " ".join(d.get("name", str(d)) if isinstance(d, dict) else str(d) for d in v)
    return str(v)


@app.command("diff")
def diff(
    a: str = typer.Argument(..., help=REF_HELP),
    b: str = typer.Argument(..., help=REF_HELP),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """What differs from A to B, ML-critical changes (Python, CUDA, GPU, torch, numpy, ...) first, marked `!`."""
    from shipyard.core.environments.capture import diff as env_diff

    svc = None if a == b == "current" else out.services()
    label_a, env_a = load(a, svc)
    label_b, env_b = load(b, svc)
    changes = env_diff(env_a, env_b)
    if as_json:
        out.print_json({"a": label_a, "b": label_b, "changes": [ch.to_dict() for ch in changes]})
        return
    c = out.console()
    if not changes:
        c.print(f"{out.plain(label_a)} and {out.plain(label_b)}: the same environment")
        return
    critical = sum(ch.critical for ch in changes)
    c.print(f"{out.plain(label_a)} → {out.plain(label_b)}: {out.plural(len(changes), 'difference')}, "
            f"{critical} ML-critical (!)")
    out.table(None, ["", out.Col("what", ident=True), "A", "B"], [
        ("!" if ch.critical else "", out.plain(ch.what), out.plain(ch.a or "-"), out.plain(ch.b or "-"))
        for ch in changes])


def _write(output: Path, text: str) -> None:
    """``-o FILE``: a file (new, or through a link) is replaced whole, with the mode it had, so a failed
    write (a full disk) leaves it as it was; anything else (``/dev/stdout``, a pipe) is written as it is."""
    import os
    import stat

    from shipyard.core.workspace.atomic import as_atomic

    try:
        st = os.stat(output)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(output, "w") as f:
            f.write(text)
        return
    target = output.resolve() if output.is_symlink() else output
    with as_atomic(target, durable=False, mode=None if st is None else stat.S_IMODE(st.st_mode)) as tmp, \
            open(tmp, "x") as f:
        f.write(text)


@app.command("lock")
def lock(
    ref: str = typer.Argument(..., help="A model version NAME@V or NAME@ALIAS."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write the requirements file here "
                                       "instead of printing it."),
    with_: list[str] = typer.Option([], "--with", help="A requirement that replaces the pin of the same "
                                    "package, or is added: e.g. torch==2.3.1 (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the pins as JSON instead of the requirements file."),
) -> None:
    """A pinned requirements file for serving a model version (pip and uv install it).

    Only what its flavor and its own code need, at the versions it was registered with:
    `uv pip install -r FILE` or `pip install -r FILE`."""
    from shipyard.wiring import model_lock

    svc = out.services()
    mv = svc.registry.resolve(ref)
    locked = model_lock(svc, mv).complete(f"lock {mv.ref}", with_)
    if as_json:
        out.print_json(locked.to_dict(with_))
        return
    text = locked.text(with_)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        _write(output, text)
    except OSError as exc:
        from shipyard.errors import InvalidInputError

        raise InvalidInputError(f"cannot write {output}: {exc.strerror or exc}") from exc
    where = out.plain(str(output))
    out.console(stderr=True).print(f"wrote {where}: {out.plural(len(locked.requirements(with_)), 'pin')} for "
                                   f"{out.plain(mv.ref)}; install with `uv pip install -r {where}`")


TARGET_HELP = ("`current` (this environment), an environment record file (JSON, as `shipyard env show --json` "
               "writes), or a container image (`shipyard build` makes one): its environment is captured inside it.")
MAX_TARGET_BYTES = 16 * 1024 * 1024


def target_environment(target: str) -> tuple[str, dict[str, Any]]:
    """(what it is, its environment record) for ``--target``: `current`, or a record file."""
    from shipyard.core.environments.capture import SCHEMAS, record_problem
    from shipyard.errors import InvalidInputError

    if target == "current":
        return load("current")
    if not target.strip():
        raise InvalidInputError("--target is empty: give `current` or an environment record file")
    path = Path(target)
    if not path.exists() and not target.endswith(".json"):  # not a record file: a container image
        import os

        from shipyard.wiring import image_environment

        return f"the image {target}", image_environment(target, os.environ)
    try:
        raw = _read_target(path)
    except OSError as exc:
        raise InvalidInputError(f"cannot read the target {target!r} ({exc.strerror or exc}): give `current` or an "
                                "environment record file (`shipyard env show current --json > env.json`)") from exc
    try:
        if len(raw) > MAX_TARGET_BYTES:
            raise ValueError(f"larger than {MAX_TARGET_BYTES // 1024 // 1024} MiB")
        record = json.loads(raw)
        if not isinstance(record, dict) or record.get("schema") not in SCHEMAS:
            raise ValueError(f"not an environment record (schema {', '.join(SCHEMAS)})")
        problem = record_problem(record)
        if problem is not None:
            raise ValueError(problem)
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{target} is not an environment record: {str(exc).splitlines()[0][:160]}; write one "
                                "with `shipyard env show current --json`") from None
    return str(path), record


def _read_target(path: Path) -> bytes:
    """A record file's bytes, within ``MAX_TARGET_BYTES + 1``. A named pipe with no writer reads as empty
    instead of waiting for one forever; a pipe being written (``--target <(ssh prod shipyard env show current
    --json)``) is read to its end."""
    import os

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        os.set_blocking(fd, True)
        return f.read(MAX_TARGET_BYTES + 1)


@app.command("check")
def check(
    ref: str = typer.Argument(..., help="A model version NAME@V or NAME@ALIAS."),
    target: str = typer.Option("current", "--target", help=TARGET_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict and each mismatch as JSON."),
) -> None:
    """Can TARGET run the model? One line per mismatch, saying what to change; exits 1 on any.

    Checks the NVIDIA driver for its CUDA build, the GPU architecture, Python, the machine, the
    ML-critical packages its lock pins and the packages its flavor and its own code need."""
    from shipyard.core.environments.check import check as env_check
    from shipyard.wiring import model_lock, version_environment

    svc = out.services()
    mv = svc.registry.resolve(ref)
    model_env = version_environment(svc, mv)
    lock = model_lock(svc, mv)
    label, target_env = target_environment(target)
    mismatches = env_check(model_env, target_env, [p.name for p in lock.pins], lock.roots)
    if as_json:
        out.print_json({"model": mv.ref, "target": label, "ok": not mismatches,
                        "mismatches": [m.to_dict() for m in mismatches]})
    elif not mismatches:
        out.console().print(f"{out.plain(label)} can run {out.plain(mv.ref)}")
    else:
        c = out.console()
        c.print(f"{out.plain(label)} cannot run {out.plain(mv.ref)} as registered: "
                f"{out.plural(len(mismatches), 'mismatch', 'mismatches')}")
        for m in mismatches:
            c.print(f"  {out.plain(m.line())}", soft_wrap=True)
    if mismatches:
        raise typer.Exit(1)
