"""Trust: what loading a model version may run beyond Shipyard's allowlist, and who allowed it.

A saved model can carry code: a pickle, a TorchScript program, project code (``code_paths``),
the name of a class to import and call, or skops types outside scikit-learn, NumPy and SciPy.
A flavor says what a folder needs (``Flavor.requires``); a user trusts those items for one version,
and the decision is an audit event (who, when, what, why), never something read from the model's own files. A decision
counts only for the actor who made it and for actors who list that one as a reviewer
(``SHIPYARD_TRUSTED_ACTORS``); among those, the latest one counts. A version is immutable, its
trust is not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from shipyard.errors import InvalidInputError, UntrustedModelError

TRUST_ACTION = "trust"
PICKLE = "pickle"
CODE = "code"
TYPE_PREFIX = "type:"
CLASS_PREFIX = "class:"
IN_PROCESS_REASON = "logged in-process with shipyard.log_model (the model object came from this program)"
_DOTTED = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*"
TYPE_RE = re.compile(_DOTTED)  # always used with fullmatch: "$" would let a final newline through
CLASS_RE = re.compile(rf"{_DOTTED}:{_DOTTED}")
_MAX_NAME = 256
_MAX_SHOWN = 10  # items named in an error line; more than that is itself a reason to look closer


def check_type_name(name: str) -> str:
    if len(name) > _MAX_NAME or not TYPE_RE.fullmatch(name) or "." not in name:
        raise InvalidInputError(f"invalid type name {name[:80]!r}: use the dotted name, e.g. mypackage.MyTransformer")
    return name


def check_class_name(name: str) -> str:
    if len(name) > _MAX_NAME or not CLASS_RE.fullmatch(name):
        raise InvalidInputError(f"invalid class {name[:80]!r}: use module:Class, e.g. mypackage.nets:TinyNet")
    return name


@dataclass(frozen=True, slots=True)
class TrustSet:
    """Items that run code when a model loads: a pickle, stored code, skops types, classes to import."""

    pickle: bool = False
    code: bool = False
    types: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset()

    @classmethod
    def of(cls, pickle: bool = False, code: bool = False, types: Iterable[str] = (),
           classes: Iterable[str] = ()) -> TrustSet:
        """A validated set (names a user typed or a flavor read from a file)."""
        return cls(bool(pickle), bool(code), frozenset(check_type_name(t) for t in types),
                   frozenset(check_class_name(c) for c in classes))

    @classmethod
    def from_items(cls, items: Iterable[str]) -> TrustSet:
        """Parse the canonical item strings of an audit event (``pickle``, ``type:X``, ``class:m:C``)."""
        pickle = code = False
        types: list[str] = []
        classes: list[str] = []
        for item in items:
            if item == PICKLE:
                pickle = True
            elif item == CODE:
                code = True
            elif item.startswith(TYPE_PREFIX):
                types.append(item[len(TYPE_PREFIX):])
            elif item.startswith(CLASS_PREFIX):
                classes.append(item[len(CLASS_PREFIX):])
            else:
                raise InvalidInputError(f"unknown trust item {item[:80]!r}")
        return cls.of(pickle, code, types, classes)

    def items(self) -> list[str]:
        """Canonical, sorted item strings: what an audit event records."""
        return ([PICKLE] if self.pickle else []) + ([CODE] if self.code else []) + \
            [TYPE_PREFIX + t for t in sorted(self.types)] + [CLASS_PREFIX + c for c in sorted(self.classes)]

    def __bool__(self) -> bool:
        return self.pickle or self.code or bool(self.types) or bool(self.classes)

    def __len__(self) -> int:
        return len(self.items())

    def __sub__(self, other: TrustSet) -> TrustSet:
        return TrustSet(self.pickle and not other.pickle, self.code and not other.code,
                        self.types - other.types, self.classes - other.classes)

    def __or__(self, other: TrustSet) -> TrustSet:
        return TrustSet(self.pickle or other.pickle, self.code or other.code,
                        self.types | other.types, self.classes | other.classes)

    def describe(self) -> str:
        """One line for people: ``a pickle; types a.B, c.D; class m:C``."""
        parts = []
        if self.pickle:
            parts.append("a pickle (runs any code it names)")
        if self.code:
            parts.append("stored code (a TorchScript program, or project code saved with code_paths)")
        if self.types:
            parts.append(("type " if len(self.types) == 1 else "types ") + _shown(sorted(self.types)))
        if self.classes:
            parts.append(("class " if len(self.classes) == 1 else "classes ") + _shown(sorted(self.classes)))
        return "; ".join(parts) or "nothing"

    def flags(self) -> str:
        """The ``shipyard models trust`` options that trust exactly this set."""
        return " ".join((["--pickle"] if self.pickle else []) + (["--code"] if self.code else [])
                        + [f"--type {t}" for t in sorted(self.types)]
                        + [f"--class {c}" for c in sorted(self.classes)])


def _shown(names: list[str]) -> str:
    if len(names) <= _MAX_SHOWN:
        return ", ".join(names)
    return ", ".join(names[:_MAX_SHOWN]) + f", … ({len(names) - _MAX_SHOWN} more)"


def untrusted_error(ref: str, needed: TrustSet, granted: TrustSet, by: str | None = None) -> UntrustedModelError:
    """The one-line refusal: which version, what is untrusted, and the command that trusts it.

    ``by``: the actor whose decision would have covered it, had it been this actor or a reviewer.
    """
    missing = needed - granted
    whose = "" if by is None else (f", trusted by {printable(by)}, who is not you or a listed reviewer "
                                   "(SHIPYARD_TRUSTED_ACTORS)")
    if len(needed) > _MAX_SHOWN:
        how = (f"it needs {len(needed)} items, an unusual number: review the model before trusting any of it "
               f"(`shipyard models trust {ref} --help`)")
    else:
        how = f"if you trust its author, run: shipyard models trust {ref} {needed.flags()} -m REASON"
    return UntrustedModelError(f"{ref} is not trusted to load: it contains {missing.describe()}{whose}; {how}")


def printable(text: str, limit: int = 80) -> str:
    """``text`` (an actor name from the database, say) on one short line: control characters become ``?``."""
    return "".join(c if c.isprintable() else "?" for c in text[:limit])


def refuse_untrusted(what: str, needed: TrustSet, granted: TrustSet) -> None:
    """A flavor's own last check before it deserializes ``what`` (Registry.load checked first)."""
    missing = needed - granted
    if missing:
        raise UntrustedModelError(f"{what} contains {missing.describe()}, which was not trusted; nothing was loaded")
