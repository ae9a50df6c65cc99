"""``shipyard alias``: move and remove aliases; every move is an audit record."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import typer

from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.wiring import Services

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
    """Point NAME@ALIAS at VERSION. A protected alias (policy.protected_aliases: production by default) moves
    only when the policy bundle in policies/ allows it (a denied move exits 11 and says why)."""
    from shipyard.wiring.policy import move_alias

    svc = out.services()
    event = move_alias(svc, name, alias, version, reason)
    _warn_if_deployed(svc, name, alias)
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
    svc = out.services()
    event = svc.registry.remove_alias(name, alias, reason)
    _warn_if_deployed(svc, name, alias)
    if as_json:
        out.print_json(event.to_dict())
    else:
        out.console().print(f"{name}@{alias} removed (was version {event.old})")


def _warn_if_deployed(svc: Services, name: str, alias: str) -> None:
    """An alias a deploy environment follows (of a model promoted through git) moves by hand here, but the
    environment runs what git holds: say so."""
    from shipyard.wiring.deploy import environment_of_alias

    env = environment_of_alias(svc, name, alias)
    if env is not None:
        sys.stderr.write(  # one line, as errors are: a terminal wraps it, a log keeps it whole
            f"note: {name}@{alias} follows deploy environment {env!r}, which runs what its GitOps repository holds: "
            f"this moved the alias only; `shipyard promote {name}@V --env {env}` (or `shipyard rollback --env {env}`) "
            "changes what runs\n")
