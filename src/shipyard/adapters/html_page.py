"""One self-contained HTML page with plotly's JavaScript embedded (the monitor's report, the plots page).

A page carries a generator marker in its head: it is written over an existing file only when that file carries
the same marker, so a user's own file (or a link, or a folder) at the path is never replaced.
"""

from __future__ import annotations

import html
import os
import stat
from pathlib import Path

from shipyard.errors import InvalidInputError, MissingExtraError

HEAD_BYTES = 4096  # the marker sits in the first lines of a page


def marker(generator: str) -> str:
    return f'<meta name="generator" content="{generator}">'


def check_target(path: Path, option: str, generator: str, what: str) -> None:
    """Refuse ``path`` when it exists and is not a page ``generator`` wrote (a link, not a file, or no marker);
    ``option`` names where the path came from (``--html``), ``what`` the page, in the errors."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise InvalidInputError(f"{option} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidInputError(f"{option} {path} exists and is not a file Shipyard wrote (a link or a folder): "
                                "give another path")
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    if marker(generator).encode() not in head:
        raise InvalidInputError(f"{option} {path} exists and is not a {what}: give another path, or remove the file")


def document(generator: str, title: str, css: str, body: str, purpose: str, extra: str, csp: str | None = None) -> str:
    """The whole page: ``body`` under a head holding the marker, the title, ``css``, a Content-Security-Policy
    when given, and plotly.js (``MissingExtraError`` naming ``purpose`` and ``extra`` without plotly)."""
    try:
        from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]
    except ModuleNotFoundError as exc:
        raise MissingExtraError(purpose, extra) from exc
    policy = f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n" if csp else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n{marker(generator)}\n{policy}"
            f"<title>{html.escape(title)}</title>\n<style>{css}</style>\n"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script>\n</head>\n<body>\n{body}\n</body>\n</html>\n")
