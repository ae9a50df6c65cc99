"""Model references: ``NAME`` (latest), ``NAME@N`` (a version), ``NAME@ALIAS``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipyard.errors import InvalidReferenceError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_HINT = "use NAME, NAME@VERSION (e.g. iris@3) or NAME@ALIAS (e.g. iris@production)"


def check_model_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidReferenceError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_alias(alias: str) -> str:
    if not ALIAS_RE.match(alias):
        raise InvalidReferenceError(
            f"invalid alias {alias!r}: start with a letter, then letters, digits, '_' or '-' "
            "(numbers name versions, not aliases)"
        )
    return alias


@dataclass(frozen=True, slots=True)
class ModelRef:
    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        if not isinstance(text, str) or not text.strip():
            raise InvalidReferenceError(f"empty model reference: {_HINT}")
        name, sep, target = text.strip().partition("@")
        if not sep:
            return cls(_name(name, text))
        if not target or "@" in target:
            raise InvalidReferenceError(f"malformed model reference {text!r}: {_HINT}")
        if target.isdigit():
            version = int(target)
            if version < 1:
                raise InvalidReferenceError(f"malformed model reference {text!r}: versions start at 1")
            return cls(_name(name, text), version=version)
        if not ALIAS_RE.match(target):
            raise InvalidReferenceError(f"malformed model reference {text!r}: {_HINT}")
        return cls(_name(name, text), alias=target)

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def _name(name: str, text: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidReferenceError(f"malformed model reference {text!r}: {_HINT}")
    return name
