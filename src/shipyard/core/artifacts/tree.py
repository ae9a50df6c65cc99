"""Store a file or a folder (as a manifest) and bring it back, verifying every byte."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from shipyard.core.artifacts.digest import CHUNK_SIZE, Digest
from shipyard.core.artifacts.manifest import Manifest, ManifestEntry
from shipyard.errors import IntegrityError, InvalidInputError, NotFoundError
from shipyard.ports import ObjectStore, Progress, no_progress


@dataclass(frozen=True, slots=True)
class Stored:
    digest: Digest  # of the file, or of the folder's manifest
    size: int
    is_dir: bool
    manifest: Manifest | None = None


def put_path(store: ObjectStore, path: Path, progress: Progress = no_progress) -> Stored:
    """Store ``path``: a file as one object, a folder as its files plus a manifest object."""
    path = Path(path)
    if path.is_file():
        digest = store.put_file(path, progress)
        return Stored(digest, path.stat().st_size, is_dir=False)
    if path.is_dir():
        entries = []
        for file in sorted(_walk(path)):
            st = file.stat()
            entries.append(ManifestEntry(
                file.relative_to(path).as_posix(), store.put_file(file, progress), st.st_size,
                0o755 if st.st_mode & stat.S_IXUSR else 0o644,
            ))
        manifest = Manifest.of(entries)
        return Stored(store.put_bytes(manifest.to_bytes()), manifest.size, is_dir=True, manifest=manifest)
    raise InvalidInputError(f"{path} does not exist or is not a regular file or folder")


def _walk(root: Path) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        files.extend(Path(dirpath) / f for f in filenames if not Path(dirpath, f).is_symlink())
    return files


def load_manifest(store: ObjectStore, digest: Digest) -> Manifest:
    return Manifest.from_bytes(read_verified(store, digest))


def read_verified(store: ObjectStore, digest: Digest) -> bytes:
    with store.open(digest) as f:
        data = f.read()
    if Digest.of_bytes(data) != digest:
        raise IntegrityError(f"object {digest} is corrupt (its bytes no longer hash to its name)")
    return data


def copy_verified(store: ObjectStore, digest: Digest, dest: Path, mode: int = 0o644) -> None:
    """Copy one object to ``dest`` through a temp name, re-hashing it on the way."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    h = hashlib.sha256()
    try:
        with store.open(digest) as src, open(tmp, "wb") as out:
            while chunk := src.read(CHUNK_SIZE):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != digest.hex:
            raise IntegrityError(f"object {digest} is corrupt (its bytes no longer hash to its name)")
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def materialize(store: ObjectStore, manifest_digest: Digest, dest: Path) -> Manifest:
    """Write the folder named by ``manifest_digest`` into the empty or new folder ``dest``."""
    manifest = load_manifest(store, manifest_digest)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in manifest:
        target = (dest / entry.path).resolve()
        if not target.is_relative_to(dest.resolve()):
            raise IntegrityError(f"manifest {manifest_digest} names a path outside its folder: {entry.path}")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            copy_verified(store, entry.digest, target, entry.mode)
        except NotFoundError as exc:
            raise NotFoundError(f"{entry.path} of {manifest_digest}: {exc}") from exc
    return manifest
