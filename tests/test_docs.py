"""The README and --help stay true: every command is documented and explains itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from shipyard.interfaces.cli.app import app

README = (Path(__file__).parent.parent / "README.md").read_text()


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        out.append((path, cmd))
        if hasattr(cmd, "commands"):  # a group (typer ships its own click)
            out.extend(_commands(cmd, path + " "))
    return out


def test_readme_starts_with_the_two_commands() -> None:
    head = README[:600]
    assert "make demo" in head and "make test" in head


def test_every_command_has_help_and_is_in_the_readme() -> None:
    root = typer.main.get_command(app)
    assert len(_commands(root)) >= 15
    for path, cmd in _commands(root):
        assert (cmd.help or "").strip(), f"`shipyard {path}` has no help text"
        assert f"shipyard {path}" in README, f"`shipyard {path}` is not in the README"


def test_every_argument_says_what_it_is_in_help() -> None:
    """click 8.5 reset an argument's help after typer set it: every REF showed no text in --help."""
    root = typer.main.get_command(app)
    arguments = [(path, p) for path, cmd in _commands(root) for p in getattr(cmd, "params", ())
                 if p.param_type_name == "argument"]
    assert len(arguments) >= 10
    for path, param in arguments:
        assert (getattr(param, "help", None) or "").strip(), f"`shipyard {path}`: {param.name} has no help"
