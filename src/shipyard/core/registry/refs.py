"""Model references: ``NAME`` or ``NAME@latest`` (the newest version), ``NAME@N`` (a version), ``NAME@ALIAS``, and
MLflow's URIs for the same: ``models:/NAME/N``, ``models:/NAME@ALIAS``, ``models:/NAME/latest``, ``models:/NAME``;
``runs:/RUN_ID/PATH`` names the version registered from the model that run logged at ``PATH``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shipyard.errors import InvalidReferenceError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # \Z: "$" would let a final newline through
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
MAX_VERSION = 2**31 - 1  # versions are counted from 1; the database column is a 32-bit INTEGER on every backend
LATEST = "latest"  # built in: never an alias, or NAME@latest and NAME would disagree
_HINT = "use NAME, NAME@VERSION (e.g. iris@3) or NAME@ALIAS (e.g. iris@production)"
MODELS_URI = "models:/"
RUNS_URI = "runs:/"
MAX_RUN_PATH = 1024
STAGE_ALIASES = {"production": "production", "staging": "staging"}  # MLflow's stages -> the aliases standing for them


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


def check_new_alias(alias: str) -> str:
    """``alias`` if it may be set: a valid alias that is not reserved (``latest`` always means the newest version)."""
    check_alias(alias)
    if alias.lower() == LATEST:
        raise InvalidReferenceError(f"alias {alias!r} is reserved: NAME and NAME@latest always mean the newest "
                                    "version; choose another name, e.g. champion")
    return alias


def check_version(version: object) -> int:
    """``version`` if it is a version number Shipyard can store (1 to ``MAX_VERSION``), else InvalidReferenceError."""
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        shown = repr(version)[:40] if not isinstance(version, int) or version.bit_length() < 128 else \
            f"of {len(str(version)) if version.bit_length() < 10_000 else 'thousands of'} digits"
        raise InvalidReferenceError(f"invalid version {shown}: versions run from 1 to {MAX_VERSION}")
    return version


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A version by number or alias, the newest one, or (``run_id`` and ``path`` set, ``name`` empty) the
    version registered from the model a run logged at ``path``: the registry resolves that one."""

    name: str
    version: int | None = None
    alias: str | None = None
    run_id: str | None = None
    path: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        if not isinstance(text, str) or not text.strip():
            raise InvalidReferenceError(f"empty model reference: {_HINT}")
        text = text.strip()
        if text.startswith(RUNS_URI):
            return _run_ref(text)
        if text.startswith(MODELS_URI):
            return cls.parse(_models_uri(text))
        name, sep, target = text.partition("@")
        if not sep:
            return cls(_name(name, text))
        if not target or "@" in target:
            raise InvalidReferenceError(f"malformed model reference {text!r}: {_HINT}")
        if target.isascii() and target.isdigit():
            digits = target.lstrip("0") or "0"  # int() of thousands of digits is itself an error: length first
            if len(digits) > len(str(MAX_VERSION)) or int(digits) > MAX_VERSION:
                raise InvalidReferenceError(f"malformed model reference {text[:80]!r}: "
                                            f"versions run from 1 to {MAX_VERSION}")
            version = int(digits)
            if version < 1:
                raise InvalidReferenceError(f"malformed model reference {text!r}: versions start at 1")
            return cls(_name(name, text), version=version)
        if not ALIAS_RE.match(target):
            raise InvalidReferenceError(f"malformed model reference {text!r}: {_HINT}")
        if target.lower() == LATEST:
            return cls(_name(name, text))
        return cls(_name(name, text), alias=target)

    def __str__(self) -> str:
        if self.run_id is not None:
            return f"{RUNS_URI}{self.run_id}/{self.path}"
        if self.version is not None:
            return f"{self.name}@{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def _name(name: str, text: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidReferenceError(f"malformed model reference {text!r}: {_HINT}")
    return name


def _models_uri(text: str) -> str:
    """``models:/iris/3`` -> ``iris@3``; ``models:/iris@champion`` -> ``iris@champion``; ``models:/iris/latest``
    and ``models:/iris`` -> ``iris``."""
    rest = text[len(MODELS_URI):].strip("/")
    name, sep, target = rest.partition("/")
    if not sep and rest and not rest.startswith(MODELS_URI):
        return rest  # models:/iris@champion, models:/iris
    if sep and target.lower() == LATEST:
        return name
    if sep and target.isascii() and target.isdigit():
        return f"{name}@{target}"
    if sep and target.lower() in STAGE_ALIASES:  # models:/iris/Production: the alias stages became
        return f"{name}@{STAGE_ALIASES[target.lower()]}"
    raise InvalidReferenceError(f"malformed model URI {text[:80]!r}: use models:/NAME/VERSION, models:/NAME@ALIAS "
                                "or models:/NAME/latest (stages are aliases here: models:/iris/Production is "
                                "models:/iris@production)")


def _run_ref(text: str) -> ModelRef:
    """``runs:/RUN_ID/PATH`` -> a reference to the version registered from that run's model at PATH."""
    run_id, _, path = text[len(RUNS_URI):].strip("/").partition("/")
    path = path.strip("/")
    if not run_id or not path or len(text) > MAX_RUN_PATH or not run_id.isascii() or not run_id.isalnum() \
            or any(part in ("", ".", "..") for part in path.split("/")):
        raise InvalidReferenceError(f"malformed run URI {text[:80]!r}: use runs:/RUN_ID/PATH (PATH: where the run "
                                    "logged the model, e.g. runs:/3f2a.../model)")
    return ModelRef("", run_id=run_id, path=path)
