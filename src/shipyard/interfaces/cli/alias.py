"""``shipyard alias``: move and remove aliases; every move is an audit record."""

from __future__ import annotations

import typer

from shipyard.interfaces.cli import output as out

app = typer.Typer(help="Point aliases (staging, production, ...) at versions; each move is audited.",
                  no_args_is_help=True)


@app.command("set")
def set_alias(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. staging or production."),
    version: int = typer.Argument(..., help="Version number the alias will point at."),
    reason: str = typer.Option("", "--reason", "-m", help="Why, for the audit log."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Point NAME@ALIAS at VERSION."""
    event = out.services().registry.set_alias(name, alias, version, reason)
    if as_json:
        out.print_json(event.to_dict())
    else:
        moved = f"{event.old} → {event.new}" if event.old else f"→ {event.new}"
        out.console().print(f"{name}@{alias}: {moved}")


@app.command("rm")
def remove_alias(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias to remove."),
    reason: str = typer.Option("", "--reason", "-m", help="Why, for the audit log."),
    as_json: bool = out.JSON_OPTION,
) -> None:
    """Remove NAME@ALIAS (the version itself stays)."""
    event = out.services().registry.remove_alias(name, alias, reason)
    if as_json:
        out.print_json(event.to_dict())
    else:
        out.console().print(f"{name}@{alias} removed (was version {event.old})")
