"""``shipyard sign`` and ``shipyard keys``: sign a version's files, make a key pair. (Skeleton.)"""

from __future__ import annotations

import typer

keys_app = typer.Typer(help="Signing keys: make a key pair for `shipyard sign`.", no_args_is_help=True)


def sign() -> None:
    """Sign a model version's files (OpenSSF model-signing) (not implemented yet)."""
