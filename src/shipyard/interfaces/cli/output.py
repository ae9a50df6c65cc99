"""Formatting for the CLI: Rich tables for people, ``--json`` for scripts, one-line errors."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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
    # piped output is read by people later (logs, CI): don't squeeze it to 80 columns
    width = None if stream.isatty() else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A Rich table; only the last column wraps, the others keep their values on one line."""
    from rich.table import Table

    t = Table(title=title, title_justify="left", header_style="bold")
    for i, col in enumerate(columns):
        last = i == len(columns) - 1
        t.add_column(col, overflow="fold" if last else "ellipsis", no_wrap=not last, min_width=min(len(col), 12))
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    console().print(t)


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


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
    sys.stderr.write(f"error: {message}\n")


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
