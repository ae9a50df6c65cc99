"""``shipyard init``: make a folder a Shipyard project."""

from __future__ import annotations

from pathlib import Path

import typer

from shipyard.interfaces.cli import output as out


def init(
    folder: Path = typer.Argument(Path("."), help="The project folder (default: here)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing shipyard.yaml."),
) -> None:
    """Write an annotated shipyard.yaml and the default policy bundle (policies/), and create .shipyard/ (kept
    out of git)."""
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
