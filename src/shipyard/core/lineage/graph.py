"""Lineage: from a model version back through the runs that made its inputs, down to raw data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shipyard.core.artifacts.digest import Digest
from shipyard.core.registry.records import ModelVersion
from shipyard.ports import MetadataStore

MAX_DEPTH = 50


@dataclass
class Node:
    kind: str  # "model", "run", "input", "raw"
    label: str
    digest: Digest | None = None
    children: list[Node] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "label": self.label, "digest": None if self.digest is None else str(self.digest),
                "children": [c.to_dict() for c in self.children]}

    def raw_inputs(self) -> list[Node]:
        """The leaves: data no recorded run produced."""
        if self.kind == "raw":
            return [self]
        return [leaf for c in self.children for leaf in c.raw_inputs()]


def lineage(meta: MetadataStore, version: ModelVersion, tracked: Mapping[Digest, str] | None = None) -> Node:
    """The chain behind ``version``; ``tracked`` maps digests to paths recorded by `shipyard data add`."""
    tracked = tracked or {}
    root = Node("model", f"{version.ref} ({version.flavor})", version.manifest_digest)
    if version.run_id is None:
        root.children.append(Node("raw", "registered without a run: no lineage recorded"))
        return root
    root.children.append(_run_node(meta, version.run_id, tracked, set(), 0))
    return root


def _run_node(meta: MetadataStore, run_id: str, tracked: Mapping[Digest, str], seen: set[str], depth: int) -> Node:
    run = meta.get_run(run_id)
    node = Node("run", f"run {run.id[:8]} {run.name} ({run.status})")
    if run.id in seen or depth > MAX_DEPTH:
        return node
    seen.add(run.id)
    for path, digest in sorted(run.inputs.items()):
        producers = [p for p in meta.producers(digest) if p.id != run.id]
        if producers:
            child = Node("input", path, digest)
            child.children.append(_run_node(meta, producers[0].id, tracked, seen, depth + 1))
        else:
            name = tracked.get(digest)
            label = f"{path} (tracked data {name})" if name else path
            child = Node("raw", label, digest)
        node.children.append(child)
    return node
