"""Formatting for the CLI: Rich tables for people, ``--json`` for scripts, one-line errors."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import click
import typer

from shipyard.errors import InvalidInputError

if TYPE_CHECKING:
    from rich.console import Console

    from shipyard.core.artifacts.digest import Digest
    from shipyard.wiring import Services

PIPE_WIDTH = 160
JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


def services() -> Services:
    from shipyard.wiring import from_environment

    return from_environment()


def console(stderr: bool = False) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # piped output is read by people later (logs, CI): don't squeeze it to 80 columns, unless COLUMNS says so
    width = None if stream.isatty() or os.environ.get("COLUMNS") else PIPE_WIDTH
    c = Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)
    if c.width < 1:  # COLUMNS=0 (or a terminal that reports no size): Rich printed nothing at all, silently
        c = Console(stderr=stderr, highlight=False, soft_wrap=False, width=PIPE_WIDTH)
    return c


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but a line break and a tab


def plain(text: str) -> str:
    """``text`` (a name, a path, a description: data) escaped for an f-string given to ``console().print``, so
    that ``[/bold]`` in it reads as written rather than as Rich markup (which raised MarkupError), and a control
    character (an escape sequence from a record someone else wrote) is shown as ``\x1b``, never sent to the
    terminal."""
    from rich.markup import escape

    return escape(printable(text))


def printable(text: str) -> str:
    """``text`` with each control character shown as ``\x1b`` (for output written without Rich)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@dataclass(frozen=True)
class Col:
    """A table column. An ``ident`` (a run id, a version, a timestamp, a short status word) is never cut
    or wrapped; other columns wrap at spaces, and break a word only when it is longer than the column.
    A header is never split: its width is the column's minimum. When the table is wider than the
    terminal, columns with ``drop`` > 0 are hidden, highest first (the rightmost of equals first), and
    a line names them. A column empty in every row is left out."""

    header: str
    ident: bool = False
    drop: int = 0
    least: int | None = None  # the narrowest a wrapping column may get (default: see TEXT_MIN_WIDTH)


TEXT_MIN_WIDTH = 10  # a wrapping column is not squeezed below this (or its header)
WORD_MAX_WIDTH = 24  # ... nor below its longest word, if that is shorter than this (a digest folds anyway)


def table(title: str | None, columns: Sequence[str | Col], rows: Iterable[Sequence[Any]],
          hint: str = "--json shows all") -> None:
    """A Rich table that fits the terminal without losing identifiers: low-value columns go first, then text wraps.

    ``hint`` ends the line that names the hidden columns (what to do to see them).
    """
    # headers and cells are data (a run's name, a param someone logged): a control character is shown as ``\x1b``,
    # never sent to the terminal (Rich's Text drops BEL or CR, but not ESC)
    cols = [replace(c, header=printable(c.header)) if isinstance(c, Col) else Col(printable(c)) for c in columns]
    cells = [["" if v is None else printable(str(v)) for v in row] for row in rows]
    piped = _piped_width()
    # printable ASCII, piped: a character is a cell, and Rich would print no style (the grid below prints it alike)
    plain = piped is not None and title is None and bool(cells) and all(
        _plain(c.header) for c in cols) and all(_plain(v) for r in cells for v in r)
    if plain:
        measure: Callable[[str], int] = len
    else:
        from rich.cells import cell_len as measure
    # widths in terminal cells: a CJK character takes two
    natural = [max([measure(c.header), *(measure(line) for r in cells for line in r[i].splitlines())])
               for i, c in enumerate(cols)]
    # a wrapping column keeps room for its longest word, up to a point, and always for its header
    words = [max([measure(c.header), *(measure(w) for r in cells for w in r[i].split())])
             for i, c in enumerate(cols)]
    least = [n if c.ident else max(measure(c.header), min(n, c.least or max(TEXT_MIN_WIDTH, min(w, WORD_MAX_WIDTH))))
             for c, n, w in zip(cols, natural, words, strict=True)]
    shown = [i for i in range(len(cols)) if not cells or any(r[i] for r in cells)]
    width = piped if piped is not None else console().width
    hidden = []
    while sum(least[i] for i in shown) + 3 * len(shown) + 1 > width:  # 3 = a border and two spaces a column
        candidates = [i for i in shown if cols[i].drop > 0]
        if not candidates:
            break
        victim = max(candidates, key=lambda i: (cols[i].drop, i))
        shown.remove(victim)
        hidden.append(victim)
    whole = [min(w, n, WORD_MAX_WIDTH) for w, n in zip(words, natural, strict=True)]  # room to keep words whole
    widths = _fit(shown, [c.ident for c in cols], natural, least, whole, width - 3 * len(shown) - 1)
    note = ""
    if hidden:
        names = ", ".join(cols[i].header for i in sorted(hidden))  # in the table's order
        note = f"(hidden to fit {width} columns: {names}; {hint})"
    if plain and shown and all(widths[i] == natural[i] for i in shown) and len(note) <= width \
            and sum(widths.values()) + 3 * len(shown) + 1 <= width:
        sys.stdout.write(_grid([cols[i].header for i in shown], [[r[i] for i in shown] for r in cells],
                               [widths[i] for i in shown]) + (note + "\n" if note else ""))
        return
    from rich.table import Table
    from rich.text import Text

    c = console()
    t = Table(title=title, title_justify="left", header_style="bold")
    # cells and headers are data (a run name, a metric key), never Rich markup: "[/bold]" in a name broke the table
    for i in shown:
        t.add_column(Text(cols[i].header), width=widths[i], no_wrap=cols[i].ident, overflow="fold")
    for row in cells:
        t.add_row(*(Text(row[i]) for i in shown))
    c.print(t)
    if note:
        c.print(Text(note, style="dim"))


def _piped_width() -> int | None:
    """The width ``console()`` has when stdout is not a terminal and Rich prints no style (no FORCE_COLOR,
    TTY_COMPATIBLE=1); None when Rich must tell (a terminal, or a COLUMNS that is not a number)."""
    env = os.environ
    if sys.stdout.isatty() or env.get("FORCE_COLOR") or env.get("TTY_COMPATIBLE") == "1":
        return None
    columns = env.get("COLUMNS")
    if not columns:
        return PIPE_WIDTH
    if not columns.isdigit():
        return None
    return int(columns) or PIPE_WIDTH


def _plain(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _grid(headers: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int]) -> str:
    """The table as Rich draws it (its HEAVY_HEAD box), when no cell wraps and no style is printed: the same
    characters, without Rich's layout of each cell (~2 ms for 50 rows of 18 columns instead of ~90)."""
    def line(left: str, fill: str, mid: str, right: str) -> str:
        return left + mid.join(fill * (w + 2) for w in widths) + right + "\n"

    def cells(values: Sequence[str], edge: str) -> str:
        return edge + edge.join(f" {v.ljust(w)} " for v, w in zip(values, widths, strict=True)) + edge + "\n"

    return (line("┏", "━", "┳", "┓") + cells(headers, "┃") + line("┡", "━", "╇", "┩")
            + "".join(cells(r, "│") for r in rows) + line("└", "─", "┴", "┘"))


def _fit(shown: list[int], ident: list[bool], natural: list[int], least: list[int], words: list[int],
         room: int) -> dict[int, int]:
    """Each shown column's width: identifiers as they are; the room left goes to the wrapping columns,
    first so that no word is broken (narrowest need first), then in proportion to what they would like."""
    widths = {i: natural[i] for i in shown}
    text = [i for i in shown if not ident[i]]
    left = room - sum(natural[i] for i in shown if ident[i])
    if sum(natural[i] for i in text) <= left:
        return widths
    for i in text:
        widths[i] = least[i]
    spare = left - sum(least[i] for i in text)
    for i in sorted(text, key=lambda i: words[i] - widths[i]):  # whole words first
        give = max(0, min(spare, words[i] - widths[i]))
        widths[i] += give
        spare -= give
    wants = sum(natural[i] - widths[i] for i in text)
    if spare <= 0 or wants <= 0:
        return widths
    share = {i: (natural[i] - widths[i]) * spare // wants for i in text}
    for i in text:
        widths[i] += share[i]
    spare -= sum(share.values())
    for i in text:  # what rounding left over, to the first that still want it
        give = min(spare, natural[i] - widths[i])
        widths[i] += give
        spare -= give
    return widths


def heading(text: str) -> None:
    """A section heading: a rule with the title in it when it fits, else a rule over the title, wrapped."""
    from rich.markup import escape

    c = console()
    if len(text) + 6 <= c.width:
        c.rule(f"[bold]{escape(text)}")
    else:
        c.rule()
        c.print(f"[bold]{escape(text)}[/bold]")


MAX_NAMED = 10  # metric keys an error names, the most common first


def metric_columns(metrics: Iterable[Mapping[str, float]], chosen: Sequence[str] | None = None,
                   rows: str = "run") -> list[str]:
    """Which metric keys a table shows, in order: ``chosen`` as given (each must be logged by some row),
    else every key, the ones most rows have first (then by name)."""
    from collections import Counter

    have = Counter(k for m in metrics for k in m)
    if chosen:
        for key in chosen:
            if key not in have:
                from difflib import get_close_matches

                close = get_close_matches(key, list(have), n=1)
                names = sorted(have, key=lambda k: (-have[k], k))  # one line: 200 keys made a screenful
                listed = ", ".join(names[:MAX_NAMED]) + (f" and {len(names) - MAX_NAMED} more (--json lists them)"
                                                         if len(names) > MAX_NAMED else "")
                raise InvalidInputError(f"no listed {rows} logged a metric {key!r}"
                                        + (f" (did you mean {close[0]!r}?)" if close else
                                           f"; they have {listed or 'none'}"))
        return list(dict.fromkeys(chosen))
    return sorted(have, key=lambda k: (-have[k], k))


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``1 file``, ``3 files``: a count and its noun, agreed."""
    return f"{n} {noun if n == 1 else many or noun + 's'}"


def id_width(ids: Iterable[str], minimum: int = 8) -> int:
    """How many leading characters tell ``ids`` apart: the shortest unique prefix, at least ``minimum``."""
    distinct = set(ids)
    width = minimum
    while len({i[:width] for i in distinct}) < len(distinct):
        width += 1
    return width


def series(last: float, count: int) -> str:
    """A metric's value for a table cell: the number, or the last of several logged values, marked as such.
    The one wording for a series everywhere (runs, models)."""
    return number(last) if count <= 1 else f"{number(last)} (last of {count})"


def when(ts: float | None, seconds: bool = False) -> str:
    """A local timestamp, to the minute for tables (``2026-11-29 16:02``, it never wraps); ``seconds`` for details."""
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(ts))


def duration(start: float, end: float | None) -> str:
    if end is None:
        return "-"
    secs = end - start
    return f"{secs * 1000:.0f} ms" if secs < 1 else f"{secs:.1f} s" if secs < 120 else f"{secs / 60:.1f} min"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def short(digest: Digest | str | None) -> str:
    """The first 12 hex digits of a digest (a ``Digest``, or a ``sha256:...`` record); other text as it is."""
    if not digest:
        return "-"
    if not isinstance(digest, str):
        return digest.short()
    from shipyard.core.artifacts.digest import Digest  # hashlib is not for --help to load

    try:
        return Digest.from_text(digest).short()
    except InvalidInputError:
        return digest


def number(v: float) -> str:
    return f"{v:.6g}"


@contextlib.contextmanager
def progress_bar(label: str, quiet: bool = False) -> Iterator[Callable[[int], None]]:
    """A transfer bar on stderr (hidden for --json and when stderr is not a terminal); yields advance(n)."""
    if quiet or not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(label, BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console(stderr=True),
                  transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda n: bar.advance(task, n)


def error(message: str) -> None:
    sys.stderr.write(f"error: {printable(message)}\n")  # a message may quote a server's or a file's text


def usage_message(exc: click.ClickException) -> str:
    """One line for a Click usage error: what was wrong, one suggestion at most, and where help is.

    Click and Typer each add their own "Did you mean" to an unknown command; this builds the line
    from the exception's fields instead, with the single closest match.
    """
    from difflib import get_close_matches

    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, click.exceptions.NoSuchCommand | click.exceptions.NoSuchOption):
        what, name = (("command", exc.command_name) if isinstance(exc, click.exceptions.NoSuchCommand)
                      else ("option", exc.option_name))
        known: list[str] = []
        if ctx is not None:
            if what == "command" and isinstance(ctx.command, click.Group):
                known = ctx.command.list_commands(ctx)
            else:
                known = [o for p in ctx.command.get_params(ctx) for o in (*p.opts, *p.secondary_opts)]
        close = get_close_matches(name, known, n=1)
        text = f"no such {what} {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
    else:
        text = " ".join(exc.format_message().split()).rstrip(".")
        text = text[:1].lower() + text[1:]
    if ctx is not None and isinstance(exc, click.UsageError):
        text += f"; see `{ctx.command_path} --help`"
    return text
