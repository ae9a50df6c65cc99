"""The command line builds only the group or command it names: the same commands, fewer Click objects."""

from __future__ import annotations

import pytest
import typer.main

from shipyard.interfaces.cli.app import app, for_command_line


def _names(cli: typer.Typer) -> set[str]:
    return set(typer.main.get_command(cli).commands)  # type: ignore[attr-defined]


def test_a_group_or_command_named_first_is_all_that_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_SHIPYARD_COMPLETE", raising=False)
    assert _names(for_command_line(["shipyard", "data", "status"])) == {"data"}
    assert _names(for_command_line(["shipyard", "run", "--force"])) == {"run"}
    everything = _names(app)
    assert {"data", "exp", "run", "demo", "init"} <= everything
    for argv in (["shipyard"], ["shipyard", "--version"], ["shipyard", "dat", "status"], ["shipyard", "demo"]):
        assert for_command_line(argv) is app  # an unknown name's error lists every command
    assert len(app.registered_groups) > 1 and _names(app) == everything  # the app itself is left whole


def test_shell_completion_sees_every_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_SHIPYARD_COMPLETE", "complete_bash")
    assert for_command_line(["shipyard", "data"]) is app
