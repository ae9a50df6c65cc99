"""Which inputs of a version's producing run are datasets, for its SBOM's ``data`` components.

A run's inputs are its stage's dependencies: data, other stages' outputs, and code (``src/train.py``). A
dataset is tracked data: a path the project's shipyard.lock lists under ``data`` (or a path inside such a
folder), a stage's output, an input whose digest is one of those entries', or a folder (its digest is a
folder manifest). A file or folder git tracks is code, never a dataset, whatever else holds.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping


def _under(path: str, folders: Collection[str]) -> bool:
    parts = path.split("/")
    return any("/".join(parts[:i]) in folders for i in range(1, len(parts) + 1))


def datasets_of(inputs: Mapping[str, str], *, tracked: Collection[str], digests: Collection[str],
                folders: Collection[str], in_git: Collection[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """``inputs`` (path -> digest) split into the datasets ((path, digest), sorted) and the paths left out.
    ``tracked``: the lock's data paths and stage outputs; ``digests``: their digests; ``folders``: the inputs
    whose digest is a folder manifest; ``in_git``: the inputs git tracks (code)."""
    kept: list[tuple[str, str]] = []
    left: list[str] = []
    for path, digest in sorted(inputs.items()):
        if path not in in_git and (_under(path, tracked) or digest in digests or path in folders):
            kept.append((path, digest))
        else:
            left.append(path)
    return kept, left
