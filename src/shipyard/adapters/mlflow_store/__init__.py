"""Readers of MLflow's tracking stores (its database, its file store) and the artifact locations they name."""

from __future__ import annotations

from typing import Any

MAX_TEXT = 5_000  # a name, a user, a location as read from a store: longer is cut


def text_of(value: Any, most: int = MAX_TEXT) -> str:
    """``value`` as text at most ``most`` characters long ("" for None)."""
    return "" if value is None else str(value)[:most]


def int_of(value: Any) -> int | None:
    """``value`` as a whole number, or None when it is missing or not one."""
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
