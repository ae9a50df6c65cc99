"""``env:NAME`` and ``file:PATH`` references."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from shipyard.core.secrets import MAX_SECRET_BYTES, clean_value
from shipyard.errors import ConfigError


class EnvSecrets:
    """``env:NAME``: the variable of ``environ`` (the live process environment by default), read at each miss."""

    scheme = "env"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def read(self, path: str) -> str:
        value = self._environ.get(path)
        if not value:
            raise ConfigError(f"env:{path}: the environment variable {path} is not set (or empty): export it, "
                              "or point the reference elsewhere")
        return value


class FileSecrets:
    """``file:PATH``: a regular file's text (at most 64 KiB, one trailing newline stripped). A relative path is
    the project's (no ``..``); an absolute one is read as given (a Kubernetes Secret volume, Vault Agent's
    /vault/secrets). Links are followed (a Secret volume's files are links), the target must be a file."""

    scheme = "file"

    def __init__(self, root: Path) -> None:
        self._root = root

    def read(self, path: str) -> str:
        where = f"file:{path}"
        given = Path(os.path.expanduser(path))
        if not given.is_absolute():
            if ".." in given.parts:
                raise ConfigError(f"{where}: a relative path may not leave the project (no '..'): give an absolute "
                                  "path for a file outside it")
            given = self._root / given
        try:
            fd = os.open(given, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise ConfigError(f"{where}: {given} does not exist: write the secret there, or fix the reference") \
                from None
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read {given} ({exc.strerror or type(exc).__name__}): check its "
                              "permissions") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ConfigError(f"{where}: {given} is not a regular file: a secret file holds the value as text")
            with os.fdopen(fd, "rb", closefd=False) as f:
                raw = f.read(MAX_SECRET_BYTES + 1)
        finally:
            os.close(fd)
        if len(raw) > MAX_SECRET_BYTES:
            raise ConfigError(f"{where}: {given} is larger than {MAX_SECRET_BYTES // 1024} KiB: that is not a secret "
                              "(a token, a key, a URL); check the path")
        return clean_value(raw, where)
