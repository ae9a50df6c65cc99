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
