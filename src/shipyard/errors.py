"""The one error tree of Shipyard.

Every error a user can cause or fix derives from ``ShipyardError`` and carries a message that
says what to do next. Interfaces map these classes to exit codes and HTTP statuses; nothing
else does.

    ShipyardError
    ├── ConfigError                  bad configuration or environment value
    ├── NotFoundError (LookupError)  unknown run, model, version, alias or object
    ├── InvalidReferenceError (ValueError)  a malformed reference such as ``iris@@``
    ├── InvalidInputError (ValueError)      a bad argument: filter, param, path
    ├── ImmutableError               an attempt to change something write-once
    ├── ConflictError                a write that clashes with what is recorded
    ├── IntegrityError               stored bytes do not match their digest
    ├── BackendUnavailableError      a store or database cannot be reached or written
    ├── MissingExtraError (ImportError)     an optional dependency is not installed
    ├── StageFailed                  a pipeline stage failed or was killed; nothing of it was cached
    ├── NotReproducedError           a re-run of a version's stages did not give back its outputs
    ├── UntrustedModelError          loading a model version would run code nobody trusted for it
    ├── PolicyDeniedError            a promotion's gates refused it (no pinned image, a failed verify, a policy)
    └── SignatureError               a version that must be signed is unsigned, tampered with, or signed by an
                                     untrusted key
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "ConfigError",
    "ConflictError",
    "ImmutableError",
    "IntegrityError",
    "InvalidInputError",
    "InvalidReferenceError",
    "MissingExtraError",
    "NotFoundError",
    "NotReproducedError",
    "PolicyDeniedError",
    "ShipyardError",
    "SignatureError",
    "StageFailed",
    "UntrustedModelError",
]


class ShipyardError(Exception):
    """Base of every error Shipyard raises on purpose; ``str(err)`` is the user's message."""

    exit_code = 1


class ConfigError(ShipyardError):
    """Configuration or an environment variable has a value Shipyard cannot use."""

    exit_code = 2


class NotFoundError(ShipyardError, LookupError):
    """A run, model, version, alias or object that does not exist."""

    exit_code = 3


class InvalidReferenceError(ShipyardError, ValueError):
    """A model reference that is not ``NAME``, ``NAME@N`` or ``NAME@ALIAS``."""

    exit_code = 2


class InvalidInputError(ShipyardError, ValueError):
    """An argument that cannot be used as given."""

    exit_code = 2


class ImmutableError(ShipyardError):
    """An attempt to change something that is write-once (a model version, a logged param)."""

    exit_code = 4


class ConflictError(ShipyardError):
    """A write that clashes with what is already recorded."""

    exit_code = 4


class IntegrityError(ShipyardError):
    """Stored bytes whose SHA-256 no longer matches their name."""

    exit_code = 5


class BackendUnavailableError(ShipyardError):
    """The object store or metadata database cannot be reached or written."""

    exit_code = 6


class MissingExtraError(ShipyardError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    exit_code = 7

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs an optional dependency: pip install 'shipyard[{extra}]'")
        self.extra = extra


class StageFailed(ShipyardError):
    """A pipeline stage exited non-zero, was killed, or did not produce its outputs; nothing of it was cached."""

    exit_code = 8

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


class NotReproducedError(ShipyardError):
    """``shipyard reproduce`` re-ran a version's stages and some output differs from the record."""

    exit_code = 9


class UntrustedModelError(ShipyardError):
    """Loading a model version would run code (a pickle, a class, stored code) nobody trusted for it.

    The message names the version, what is untrusted, and the ``shipyard models trust`` command.
    """

    exit_code = 10


class PolicyDeniedError(ShipyardError):
    """A promotion was refused by its gates; the message gives each gate's reason and what to do."""

    exit_code = 11


class SignatureError(ShipyardError):
    """A version that must be signed (``signing.require_signed``) has no signature, its files no longer match the
    one it has, or it was signed by a key that is not trusted; the message says which, and what to do."""

    exit_code = 15  # 12, 13, 14: rollout inconclusive, scan not checked, scan vulnerable
