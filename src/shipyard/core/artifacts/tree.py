"""Store a file or a folder (as a manifest) and bring it back, verifying every byte."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shipyard.core.artifacts.digest import CHUNK_SIZE, Digest, read_chunks, verified
from shipyard.core.artifacts.manifest import MAX_MANIFEST_BYTES, Manifest
from shipyard.core.workspace.atomic import as_atomic, as_atomic_at
from shipyard.core.workspace.paths import Confined
from shipyard.errors import IntegrityError, NotFoundError
from shipyard.ports import ObjectStore, Progress, StateCache, no_progress


@dataclass(frozen=True, slots=True)
class Stored:
    digest: Digest  # of the file, or of the folder's manifest
    size: int
    is_dir: bool
    manifest: Manifest | None = None


def put_path(store: ObjectStore, path: Path, progress: Progress = no_progress,
             state: StateCache | None = None, hardlink: bool = False) -> Stored:
    """Store ``path``: a file as one object, a folder as its files plus a manifest object.

    ``path`` itself must not be a symbolic link. Inside a folder, symbolic links (to files or
    folders) are skipped: they are not followed, not stored and not restored, so a version never
    holds bytes from outside the folder; a checkout refuses to write through a link that sits
    where a recorded folder should be. A file name that is not UTF-8 is refused.
    ``hardlink``: see ``ObjectStore.put_many`` (refused where the process can write through
    read-only files).
    With a ``state`` cache, files it vouches for whose objects are already stored are not read.
    """
    from shipyard.core.workspace.scan import known_digests, manifest_of, signatures, stat_path

    path = Path(path)
    files = stat_path(path)
    known = known_digests(files, state) if state is not None else {}
    digests = store.put_many([f.path for f in files], [known.get(f.path) for f in files], hardlink, progress)
    by_path = dict(zip([f.path for f in files], digests, strict=True))
    if state is not None:
        state.remember((f.path, f.inode, f.size, f.mtime_ns, by_path[f.path]) for f in files
                       if f.path not in known)
    if path.is_file():
        return Stored(digests[0], files[0].size, is_dir=False)
    manifest = manifest_of(files, by_path)
    digest = store.put_bytes(manifest.to_bytes())
    if state is not None:
        signature, parts = signatures(files)
        state.remember_tree(str(path), signature, digest)
        state.remember_parts(str(path), digest, parts)  # `data status` then compares only the folders that change
    return Stored(digest, manifest.size, is_dir=True, manifest=manifest)


def load_manifest(store: ObjectStore, digest: Digest) -> Manifest:
    """The manifest ``digest``, re-hashed, and bounded by ``MAX_MANIFEST_BYTES`` (also as it downloads)."""
    return Manifest.from_bytes(read_verified(store, digest, limit=MAX_MANIFEST_BYTES))


def read_verified(store: ObjectStore, digest: Digest, *, limit: int | None = None, what: str = "",
                  too_large: str = "") -> bytes:
    """The object's bytes, re-hashed. With ``limit`` (bytes), at most one byte more is read: a larger object
    is an IntegrityError ("WHAT is larger than N MiB" + ``too_large``, what to do). ``what`` names the
    object in the errors ("the golden examples of iris@3"); a corrupt one then says how to restore it.
    A corrupt copy the store can replace (a cached one) is replaced and read again, once."""
    try:
        return _read_verified(store, digest, limit, what, too_large)
    except IntegrityError:
        if not store.refetch(digest):
            raise
    return _read_verified(store, digest, limit, what, too_large)


def _read_verified(store: ObjectStore, digest: Digest, limit: int | None, what: str, too_large: str) -> bytes:
    if limit is not None:  # a read-through store downloads it bounded: a huge or endless object stops at the limit
        store.fetch([digest], sizes={digest: limit})
    with store.open(digest) as f:
        data = f.read() if limit is None else f.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise IntegrityError(f"{what or f'object {digest}'} is larger than {limit // 1024 // 1024} MiB{too_large}")
    if Digest.of_bytes(data) != digest:
        if what:
            raise IntegrityError(f"{what} is corrupt (its bytes no longer hash to its name); restore the "
                                 "project's store from a backup")
        raise IntegrityError(f"object {digest} is corrupt (its bytes no longer hash to its name)")
    return data


def local_corrupt(digest: Digest) -> IntegrityError:
    return IntegrityError(f"local object {digest} is corrupt (its bytes no longer hash to its name); "
                          "nothing was sent: restore it with `shipyard data pull` or add the data again")


def verified_chunks(store: ObjectStore, digest: Digest, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The object's bytes in chunks, re-hashed as they stream: IntegrityError after the last chunk if they
    do not hash to ``digest`` (a writer that has not committed yet can then throw its copy away)."""
    with store.open(digest) as src:
        yield from verified(read_chunks(src, chunk_size), digest, lambda: local_corrupt(digest))


def copy_verified(store: ObjectStore, digest: Digest, dest: Path, mode: int = 0o644) -> None:
    """Copy one object to ``dest`` through a short temp name beside it, re-hashing it on the way.

    ``dest`` is replaced by a rename, so a link at ``dest`` is replaced, never written through;
    its folder must already be checked (``Confined``) by the caller when the name is untrusted.
    """
    def corrupt() -> IntegrityError:
        return IntegrityError(f"object {digest} is corrupt (its bytes no longer hash to its name)")

    with (as_atomic(dest, durable=False, mode=0o755 if mode & 0o100 else 0o644) as tmp,
          store.open(digest) as src, open(tmp, "xb") as out):
        for chunk in verified(read_chunks(src), digest, corrupt):
            out.write(chunk)


def copy_verified_at(store: ObjectStore, digest: Digest, confined: Confined, rel: str, mode: int = 0o644,
                     what: str = "path", size: int | None = None) -> os.stat_result:
    """``copy_verified`` to ``rel`` below ``confined``'s root, through folder descriptors opened without
    following links (``Confined.parent_fd``): a link swapped in mid-way is refused or harmless, never
    written through. Returns the written file's stat. A corrupt copy the store can replace (a cached one)
    is replaced and copied again, once. ``size``: the bytes the object must have (its manifest entry's);
    a longer one stops as the excess shows, its temp file removed."""
    try:
        return _copy_verified_at(store, digest, confined, rel, mode, what, size)
    except IntegrityError:
        if not store.refetch(digest):
            raise
    return _copy_verified_at(store, digest, confined, rel, mode, what, size)


def _copy_verified_at(store: ObjectStore, digest: Digest, confined: Confined, rel: str, mode: int,
                      what: str, size: int | None) -> os.stat_result:
    def corrupt() -> IntegrityError:
        return IntegrityError(f"object {digest} is corrupt (its bytes no longer hash to its name)")

    folder, name = confined.parent_fd(rel, what)
    with (as_atomic_at(folder, name, 0o755 if mode & 0o100 else 0o644) as out, store.open(digest) as src):
        for chunk in verified(bounded(read_chunks(src), digest, size), digest, corrupt):
            out.write(chunk)
    return os.stat(name, dir_fd=folder, follow_symlinks=False)


def bounded(chunks: Iterable[bytes], digest: Digest, most: int | None) -> Iterator[bytes]:
    """``chunks`` passed through; an IntegrityError as soon as they add up to more than ``most`` bytes."""
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if most is not None and seen > most:
            raise IntegrityError(f"object {digest} has more than the {most} bytes its manifest records: it is "
                                 "damaged or hostile, and was not copied (`shipyard store verify` names every "
                                 "corrupt object)")
        yield chunk


def materialize(store: ObjectStore, manifest_digest: Digest, dest: Path) -> Manifest:
    """Write the folder named by ``manifest_digest`` into the empty or new folder ``dest``.

    Every path goes through ``Confined``: nothing is written outside ``dest`` or through a link,
    even one swapped in while the files are written (folder descriptors, see ``copy_verified_at``).
    """
    manifest = load_manifest(store, manifest_digest)
    # a read-through store downloads them all at once, none larger than the (re-hashed) manifest says
    store.fetch([entry.digest for entry in manifest], sizes={entry.digest: entry.size for entry in manifest})
    dest.mkdir(parents=True, exist_ok=True)
    with Confined(dest) as confined:
        for entry in manifest:
            try:
                copy_verified_at(store, entry.digest, confined, entry.path, entry.mode,
                                 f"manifest {manifest_digest} entry", entry.size)
            except NotFoundError as exc:
                raise NotFoundError(f"{entry.path} of {manifest_digest}: {exc}") from exc
    return manifest
