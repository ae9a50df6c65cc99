"""Remotes by URL: a folder (``/path``, ``file:///path``) or S3-compatible storage (``s3://bucket/prefix``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from shipyard.core.project.model import Remote as RemoteSpec
from shipyard.core.redact import mask_userinfo
from shipyard.errors import ConfigError, MissingExtraError
from shipyard.ports import Remote

redact = mask_userinfo  # a remote's URL or a client's error text, as messages show it


def open_remote(spec: RemoteSpec, project_root: Path, name: str | None = None,
                secret: Callable[[str, str], str] | None = None) -> Remote:
    """The remote ``spec`` describes (``name`` is its key in shipyard.yaml, for messages); ``secret`` resolves
    the credential references it may hold (reference, what it is) to their values."""
    url = spec.url
    if url.startswith("s3://"):
        try:
            from shipyard.adapters.remotes.s3 import S3Remote
        except ModuleNotFoundError as exc:
            raise MissingExtraError("S3 remotes", "s3") from exc
        return S3Remote(spec, secret)
    if "://" in url and not url.startswith("file://"):
        raise ConfigError(f"unsupported remote URL {url!r}: use s3://bucket/prefix or a folder path")
    from shipyard.adapters.remotes.folder import FolderRemote

    path = Path(url.removeprefix("file://"))
    # resolved as the kernel would (a linked project folder included), so messages name the folder plainly
    return FolderRemote((path if path.is_absolute() else project_root / path).resolve(), name)
