"""The stage graph: validated before anything runs (cycles, missing deps, clashing or escaping outputs)."""

from __future__ import annotations

import graphlib
import os
from dataclasses import dataclass
from pathlib import Path

from shipyard.core.project.model import Project as ProjectConfig
from shipyard.core.project.model import StageDef as StageSpec
from shipyard.core.workspace.add import refuse_project_files
from shipyard.core.workspace.paths import declared_path, overlaps
from shipyard.errors import ConfigError, InvalidInputError, NotFoundError


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    spec: StageSpec
    deps: tuple[str, ...]  # project-relative, normalized
    outs: tuple[str, ...]
    metrics: tuple[str, ...]
    upstream: frozenset[str]  # stages producing one of this stage's deps

    @property
    def produced(self) -> tuple[str, ...]:
        """Everything the stage writes and Shipyard stores: outs and metrics files."""
        return (*self.outs, *self.metrics)


@dataclass(frozen=True, slots=True)
class Pipeline:
    stages: dict[str, Stage]
    order: tuple[str, ...]  # a topological order

    def select(self, targets: list[str] | None) -> list[str]:
        """``targets`` and everything upstream of them, in run order (all stages by default)."""
        if not targets:
            return list(self.order)
        unknown = [t for t in targets if t not in self.stages]
        if unknown:
            raise NotFoundError(f"unknown stage {unknown[0]!r}; shipyard.yaml defines: "
                                f"{', '.join(self.order) or 'no stages'}")
        wanted: set[str] = set()
        stack = list(targets)
        while stack:
            name = stack.pop()
            if name not in wanted:
                wanted.add(name)
                stack.extend(self.stages[name].upstream)
        return [n for n in self.order if n in wanted]

    def downstream(self, name: str) -> set[str]:
        out: set[str] = set()
        for other in self.order:
            if name in self.stages[other].upstream or out & self.stages[other].upstream:
                out.add(other)
        return out


def build(config: ProjectConfig, root: Path) -> Pipeline:
    specs = config.stages
    paths = {name: _paths(name, spec) for name, spec in specs.items()}
    owners: list[tuple[str, str]] = []
    for name, (_, outs, metrics) in paths.items():
        for out in (*outs, *metrics):
            for other, claimed in owners:
                if overlaps(out, claimed):
                    who = f"stages '{other}' and '{name}'" if other != name else f"stage '{name}'"
                    raise ConfigError(f"{who} both claim output {claimed if len(claimed) <= len(out) else out}: "
                                      "each output belongs to one stage")
            owners.append((name, out))
    stages = {}
    graph: dict[str, set[str]] = {}
    for name, (deps, outs, metrics) in paths.items():
        upstream = set()
        for dep in deps:
            producers = {owner for owner, out in owners if overlaps(dep, out)}
            if producers:
                upstream |= producers
            elif not (root / dep).exists():
                raise ConfigError(f"shipyard.yaml: stage '{name}' depends on {dep}, which does not exist and no stage "
                                  f"produces it{_near(root, dep, [out for _, out in owners])}")
        if name in upstream:
            raise ConfigError(f"stage '{name}' depends on its own output")
        graph[name] = upstream
        stages[name] = Stage(name, specs[name], deps, outs, metrics, frozenset(upstream))
    try:
        order = tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise ConfigError(f"the stages form a cycle: {cycle}") from exc
    return Pipeline(stages, order)


def _paths(name: str, spec: StageSpec) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    try:
        deps = tuple(declared_path(d, f"stage '{name}' dependency") for d in spec.deps)
        outs = tuple(declared_path(o, f"stage '{name}' output") for o in spec.outs)
        metrics = tuple(declared_path(m, f"stage '{name}' metrics file") for m in spec.metrics)
        refuse_project_files((*outs, *metrics), f"stage '{name}' output")
    except InvalidInputError as exc:
        raise ConfigError(str(exc)) from exc
    return deps, outs, metrics


def _near(root: Path, dep: str, outs: list[str]) -> str:
    """A suggestion for a mistyped dependency: the closest existing sibling path or stage output."""
    import difflib

    parent = (root / dep).parent
    siblings = [str((parent / n).relative_to(root)) for n in (sorted(os.listdir(parent)) if parent.is_dir() else [])]
    match = difflib.get_close_matches(dep, [*outs, *siblings], n=1, cutoff=0.75)
    return f" (did you mean {match[0]}?)" if match else ""
