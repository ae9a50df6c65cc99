"""A piped table whose cells all fit is written without Rich's layout: the same characters as Rich prints."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shipyard.interfaces.cli import output as out

ROWS = [["e17ae8a1", "00000000", "2026-11-30 11:29", "finished", "0.9", "", "13"],
        ["67e34b99", "00000063+", "2026-11-30 11:28", "failed", "0.89", "x y z", "1"]]
COLS = [out.Col("pipeline run", ident=True), out.Col("commit", ident=True), out.Col("time", ident=True, drop=4),
        out.Col("status", ident=True, drop=8), out.Col("m0", drop=1), out.Col("note", drop=6),
        out.Col("train.p1", drop=2)]


def _rich(columns: list[out.Col], rows: list[list[str]], width: int) -> str:
    """What Rich prints for the table, piped (the reference)."""
    shown = [i for i, _ in enumerate(columns) if any(r[i] for r in rows)]
    buf = io.StringIO()
    console = Console(file=buf, width=width, highlight=False, soft_wrap=False)
    t = Table(title=None, title_justify="left", header_style="bold")
    for i in shown:
        natural = max(len(columns[i].header), *(len(r[i]) for r in rows))
        t.add_column(Text(columns[i].header), width=natural, no_wrap=columns[i].ident, overflow="fold")
    for r in rows:
        t.add_row(*(Text(r[i]) for i in shown))
    console.print(t)
    return buf.getvalue()


@pytest.mark.parametrize("rows", [ROWS, ROWS[:1], [[*r[:5], "", r[6]] for r in ROWS]])
def test_a_piped_table_reads_as_rich_draws_it(rows: list[list[str]], capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    out.table(None, COLS, rows)
    printed = capsys.readouterr().out
    assert printed == _rich(COLS, rows, out.PIPE_WIDTH)
    assert "rich" not in printed and printed.count("\n") == len(rows) + 4


def test_a_narrow_table_names_what_it_hides_as_before(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "64")
    out.table(None, COLS, ROWS, hint="--json shows all")
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "(hidden to fit 64 columns: time, status, note; --json shows all)"
    kept = [COLS[0], COLS[1], COLS[4], COLS[6]]
    assert "\n".join(lines[:-1]) + "\n" == _rich(kept, [[r[0], r[1], r[4], r[6]] for r in ROWS], 64)


def test_text_that_is_not_plain_ascii_is_left_to_rich(capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    rows = [["a", "b\tc", "日本"]]
    out.table(None, ["x", "y", "z"], rows)
    printed = capsys.readouterr().out
    assert "日本" in printed and "\t" not in printed
    assert printed.splitlines()[0].endswith("┳━━━━━━┓")  # two characters, four cells wide, and the padding


@pytest.mark.parametrize("width", [None, "30"])
def test_no_control_character_reaches_the_terminal(width: str | None, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's name, param or tag someone else logged: Rich's Text drops BEL but sends ESC and C1 controls as they
    are; every header and cell shows them escaped, on the ASCII grid and through Rich alike."""
    if width is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", width)
    out.table(None, [out.Col("k\x1b[31m"), "v"], [["evil\x1b]0;PWN\x07\x1b[31m", "\x9b31m"], ["ok", None]])
    out.error("the server said \x1b[2J\x07")
    printed = capsys.readouterr()
    assert not any((ord(c) < 32 and c != "\n") or 0x7f <= ord(c) <= 0x9f for c in printed.out + printed.err)
    assert "k\\x1b[31m" in printed.out  # shown escaped, as exp show shows them
    assert printed.err == "error: the server said \\x1b[2J\\x07\n"
