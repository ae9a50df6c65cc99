"""``shipyard init``: make a folder a Shipyard project."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.interfaces.cli import output as out


def init(
    folder: Path = typer.Argument(Path("."), help="The project folder (default: here)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing shipyard.yaml (and shipyard.lock)."),
    from_dvc: bool = typer.Option(False, "--from-dvc", help="Convert the DVC project in FOLDER in place: dvc.yaml "
                                  "becomes shipyard.yaml, .dvc files and dvc.lock become shipyard.lock (the data "
                                  "copied from the workspace or DVC's cache, md5-checked), DVC remotes become "
                                  "remotes; DVC's files are left as they are."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Write an annotated shipyard.yaml and the default policy bundle (policies/), and create .shipyard/ (kept
    out of git); or, with --from-dvc, convert a DVC project."""
    if from_dvc:
        _from_dvc(folder, force, as_json)
        return
    from shipyard.core.project.loader import CONFIG_FILE, parse_config
    from shipyard.core.project.template import TEMPLATE
    from shipyard.core.workspace.atomic import write_atomic
    from shipyard.errors import ConfigError, ConflictError, InvalidInputError
    from shipyard.interfaces.cli.gitignore import ignore

    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder")
    target = folder / CONFIG_FILE
    home = folder / ".shipyard"
    if home.is_symlink() or (home.exists() and not home.is_dir()):  # checked first: nothing half-written
        what = "a symbolic link" if home.is_symlink() else "a file"
        raise ConfigError(f"{home} is {what}, not a folder, so Shipyard cannot keep its data there; nothing was "
                          "changed: move it away and run `shipyard init` again")
    if target.exists() and not force:
        raise ConflictError(f"{target} already exists; nothing was changed (use --force to replace it)")
    parse_config(TEMPLATE)  # the template is always valid
    write_atomic(target, TEMPLATE.encode())
    home.mkdir(exist_ok=True)
    ignore(folder, ".shipyard")
    from shipyard.wiring.policy import init_bundle

    written = [path for path, done in init_bundle(folder, "policies") if done]  # never over a file there
    policies = f" and the default policy bundle ({', '.join(written)})" if written else ""
    out.console().print(f"wrote {target}{out.plain(policies)}; next: `shipyard data add PATH`, then stages in "
                        f"{CONFIG_FILE} and `shipyard run`", soft_wrap=True)


def _from_dvc(folder: Path, force: bool, as_json: bool) -> None:
    import os

    from shipyard.errors import InvalidInputError
    from shipyard.interfaces.cli.gitignore import ignore
    from shipyard.wiring.from_dvc import convert

    if not folder.is_dir():
        raise InvalidInputError(f"{folder} is not a folder")
    report = convert(folder, os.environ, force=force)
    ignore(folder.resolve(), ".shipyard")
    if as_json:
        out.print_json(report.to_dict())
        return
    console = out.console()
    console.print(f"wrote {out.plain(', '.join(report.written))} from the DVC project in {out.plain(str(folder))}",
                  soft_wrap=True)
    for name, where in report.data.items():
        where = f"the {where}" if where.startswith("workspace") else where
        console.print(f"  {out.plain(name)}: copied from {out.plain(where)}", soft_wrap=True)
    for title, items in (("stage", report.stages), ("remote", report.remotes), ("model", report.models)):
        for name, what in items.items():
            console.print(f"  {title} {out.plain(name)}: {out.plain(what)}", soft_wrap=True)
    if report.not_carried:
        console.print(f"not carried over ({len(report.not_carried)}):")
        for what, why in report.not_carried:
            console.print(f"  {out.plain(what)}: {out.plain(why)}", soft_wrap=True)
    else:
        console.print("everything was carried over")
    then = ("the `shipyard run --force ...` named above, once, to register the models"
            if any("--force" in line for line in report.models.values()) else "`shipyard run`")
    console.print(f"next: `shipyard status`, then {then}; dvc.yaml, dvc.lock and .dvc files are unchanged "
                  "(remove them when you no longer use DVC)", soft_wrap=True)
