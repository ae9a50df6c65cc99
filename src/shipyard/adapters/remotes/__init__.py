"""Remotes by URL: a folder (``/path``, ``file:///path``) or S3-compatible storage (``s3://bucket/prefix``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.core.project.model import Remote as RemoteSpec
from shipyard.core.redact import mask_userinfo
from shipyard.errors import ConfigError, MissingExtraError
from shipyard.ports import ObjectStore, Remote

if TYPE_CHECKING:
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.workspace.lockfile import PathEntry

redact = mask_userinfo  # a remote's URL or a client's error text, as messages show it


def open_remote(spec: RemoteSpec, project_root: Path, name: str | None = None,
                secret: Callable[[str, str], str] | None = None,
                dvc: tuple[Callable[[], Mapping[Digest, PathEntry]], Callable[[], ObjectStore | None]] | None = None
                ) -> Remote:
    """The remote ``spec`` describes (``name`` is its key in shipyard.yaml, for messages); ``secret`` resolves
    the credential references it may hold (reference, what it is) to their values. ``dvc``, for a DVC HTTP
    remote (``layout: dvc``): shipyard.lock's entries that carry DVC's md5, and the local store (manifests)."""
    url = spec.url
    if spec.layout == "dvc" or url.lower().startswith(("http://", "https://")):
        if spec.layout != "dvc":
            what = f"remotes.{name}" if name else "the remote"
            shown = redact(url.split("?", 1)[0].split("#", 1)[0])  # a query may hold a token: never shown
            raise ConfigError(f"remote URL {shown!r} is http(s): Shipyard reads a DVC HTTP remote only (read-"
                              f"only); add `layout: dvc` to {what} in shipyard.yaml, or use a folder or s3:// URL")
        from shipyard.adapters.remotes.dvc_http import DvcHttpRemote, scratch_of

        entries, local = dvc or (None, None)
        return DvcHttpRemote(url, name, entries, local, scratch_of(project_root))
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
