"""The stage graph: validated before anything runs (cycles, missing deps, clashing or escaping outputs)."""

from __future__ import annotations

import graphlib
import os
import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shipyard.core.project.model import Project as ProjectConfig
from shipyard.core.project.model import StageDef as StageSpec
from shipyard.core.workspace.add import refuse_project_files
from shipyard.core.workspace.paths import VENV_MARK, declared_path, overlaps, refuse_reserved
from shipyard.errors import ConfigError, InvalidInputError, NotFoundError


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    spec: StageSpec
    deps: tuple[str, ...]  # project-relative, normalized
    outs: tuple[str, ...]
    metrics: tuple[str, ...]
    upstream: frozenset[str]  # stages producing one of this stage's deps
    plots: tuple[str, ...] = ()  # plot files the stage writes (outputs like metrics)
    params: tuple[str, ...] = ()  # "key" (the default params file) or "FILE:key" / "FILE:" (all), FILE project-relative
    uncached: frozenset[str] = frozenset()  # outputs with cache: false: never stored, git keeps them
    persist: frozenset[str] = frozenset()  # outputs with persist: true: not removed before the stage runs

    @property
    def produced(self) -> tuple[str, ...]:
        """Everything the stage writes: outs, metrics and plots files (each once)."""
        return tuple(dict.fromkeys((*self.outs, *self.metrics, *self.plots)))

    @property
    def stored(self) -> tuple[str, ...]:
        """What Shipyard stores and records of what the stage writes: all but the ``cache: false`` outputs."""
        return tuple(p for p in self.produced if p not in self.uncached)


@dataclass(frozen=True, slots=True)
class Pipeline:
    stages: dict[str, Stage]
    order: tuple[str, ...]  # a topological order

    def select(self, targets: list[str] | None) -> list[str]:
        """``targets`` and everything upstream of them, in run order (all stages by default)."""
        if not targets:
            return list(self.order)
        targets = self.expand(targets)
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

    def expand(self, targets: list[str]) -> list[str]:
        """``targets`` with each foreach/matrix group name (``train``) replaced by its stages (``train@...``),
        as DVC takes a group's name as a target."""
        out = []
        for target in targets:
            group = [] if target in self.stages else [n for n in self.order if n.startswith(f"{target}@")]
            out.extend(group or [target])
        return out

    def downstream(self, name: str) -> set[str]:
        out: set[str] = set()
        for other in self.order:
            if name in self.stages[other].upstream or out & self.stages[other].upstream:
                out.add(other)
        return out


def build(config: ProjectConfig, root: Path) -> Pipeline:
    specs = config.stages
    paths = {name: _paths(name, spec) for name, spec in specs.items()}
    owners = list(dict.fromkeys(  # (stage, path, is an `outs` entry), each once
        (name, out, is_out) for name, (_, outs, metrics, plots) in paths.items()
        for out, is_out in (*((o, True) for o in outs), *((m, False) for m in (*metrics, *plots)))))
    index = _Index(owners)
    for i, (name, out, is_out) in enumerate(owners):
        for j in index.at_or_above(out):  # a pair overlaps iff one is the other or a folder above it: linear-ish
            other, claimed, claimed_out = owners[j]
            if j == i:
                continue
            if other == name and out != claimed and is_out != claimed_out:
                continue  # a metrics or plots file in the stage's own output folder (dvclive writes there)
            if other == name and out == claimed and not (is_out and claimed_out):
                continue  # a plots file that is also the stage's metrics file, or written twice
            first, second = owners[min(i, j)][0], owners[max(i, j)][0]
            who = f"stages '{first}' and '{second}'" if first != second else f"stage '{name}'"
            raise ConfigError(f"{who} both claim output {claimed if len(claimed) <= len(out) else out}: "
                              "each output belongs to one stage")
    stages = {}
    graph: dict[str, set[str]] = {}
    for name, (deps, outs, metrics, plots) in paths.items():
        upstream = set()
        for dep in deps:
            producers = {owners[j][0] for j in index.at_or_above(dep)} | index.below.get(dep, set())
            if producers:
                upstream |= producers
            elif not (root / dep).exists():
                raise ConfigError(f"shipyard.yaml: stage '{name}' depends on {dep}, which does not exist and no stage "
                                  f"produces it{_near(root, dep, [out for _, out, _ in owners])}")
        if name in upstream:
            raise ConfigError(f"stage '{name}' depends on its own output")
        graph[name] = upstream
        spec = specs[name]
        stages[name] = Stage(name, spec, deps, outs, metrics, frozenset(upstream), plots,
                             _params(spec, config.params), frozenset(_norm(spec, p) for p in spec.uncached),
                             frozenset(_norm(spec, p) for p in spec.persist))
    _refuse_inputs_as_outputs(stages, config.params, root, owners, index)
    try:
        order = tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise ConfigError(f"the stages form a cycle: {cycle}") from exc
    return Pipeline(stages, order)


def params_files(stage: Stage, default_file: str) -> set[str]:
    """The params files ``stage`` reads, relative to the project."""
    return {posixpath.normpath(p.rpartition(":")[0] or default_file) if ":" in p else default_file
            for p in stage.params}


def _refuse_inputs_as_outputs(stages: dict[str, Stage], default_file: str, root: Path,
                              owners: list[tuple[str, str, bool]], index: _Index) -> None:
    """An output is removed before its stage runs: refuse one that is a params file (an input, like a
    dependency) or a virtualenv, before anything is removed."""
    inputs = {f: name for name, stage in stages.items() for f in params_files(stage, default_file)}
    for file, reader in inputs.items():
        if not os.path.lexists(f"{root}/{file}"):
            raise ConfigError(f"shipyard.yaml: stage '{reader}' reads params file {file} (its params:), which does "
                              f"not exist: create it, or fix the name{_near(root, file, [])}")
    for file, reader in inputs.items():
        for j in index.at_or_above(file):
            name, out, _ = owners[j]
            raise ConfigError(f"stage '{name}' declares {out} as an output, but it is (or holds) the params "
                              f"file {file} stage '{reader}' reads: outputs are removed before their stage "
                              "runs; remove it from the outputs")
    for name, stage in stages.items():
        for out in stage.produced:
            if out not in stage.persist and os.path.lexists(f"{root}/{out}/{VENV_MARK}"):
                raise ConfigError(f"stage '{name}' declares {out} as an output, but it is a Python virtualenv "
                                  f"(it holds {VENV_MARK}): outputs are removed before their stage runs; "
                                  "remove it from the outputs")


def refuse_tracked_outputs(pipeline: Pipeline, data_paths: Iterable[str],
                           git_tracked: Callable[[list[str]], str | None]) -> None:
    """Refuse a stored output that ``shipyard data add`` tracks or git tracks (``git_tracked`` returns one of
    the paths it is given that git tracks a file at or under): as DVC does, since an output is removed before
    its stage runs and a stage's outputs are kept by Shipyard, not git (``cache: false`` outputs are git's)."""
    owner = {out: name for name, stage in pipeline.stages.items() for out in stage.stored}
    produced = [(name, out, True) for name, stage in pipeline.stages.items() for out in stage.produced]
    index = _Index(produced)
    for path in data_paths:
        hits = [(produced[j][0], produced[j][1]) for j in index.at_or_above(path)]
        if path in index.below:  # an output inside the tracked folder: found once, on the way to the error
            hits += [(name, out) for name, out, _ in produced if overlaps(out, path)]
        for name, out in hits[:1]:
            raise ConfigError(f"stage '{name}' declares {out} as an output, but {path} is tracked with "
                              f"`shipyard data add` (shipyard.lock's data): a path is either data you add or a "
                              "stage's output, and outputs are removed before their stage runs; remove it from "
                              "the outputs")
    tracked = git_tracked(sorted(owner))
    if tracked is not None:
        raise ConfigError(f"stage '{owner[tracked]}' declares {tracked} as an output, but git tracks it (git ls-files "
                          f"{tracked}): outputs are removed before their stage runs, so fix the outputs if the stage "
                          f"does not write it; if it does, `git rm -r --cached {tracked}` (Shipyard keeps it from "
                          "then on), or declare it with cache: false (git keeps it)")


class _Index:
    """Declared outputs by path, to find the ones that overlap a path without comparing it with every one."""

    def __init__(self, owners: list[tuple[str, str, bool]]) -> None:
        self.at: dict[str, list[int]] = {}  # path -> indexes in owners
        self.below: dict[str, set[str]] = {}  # folder -> stages with an output inside it
        for i, (name, out, _) in enumerate(owners):
            self.at.setdefault(out, []).append(i)
            folder = posixpath.dirname(out)
            while folder:
                self.below.setdefault(folder, set()).add(name)
                folder = posixpath.dirname(folder)

    def at_or_above(self, path: str) -> Iterator[int]:
        """The outputs that are ``path`` or a folder holding it."""
        while path:
            yield from self.at.get(path, ())
            path = posixpath.dirname(path)


def _in_wdir(spec: StageSpec, path: str) -> str:
    """``path`` as written in the stage, relative to the project: DVC takes a stage's paths from its ``wdir``."""
    wdir = posixpath.normpath(spec.wdir)
    return path if wdir == "." else posixpath.join(wdir, path)


def _norm(spec: StageSpec, path: str) -> str:
    return posixpath.normpath(_in_wdir(spec, path))


def _params(spec: StageSpec, default_file: str) -> tuple[str, ...]:
    """The stage's params with their files relative to the project; a stage with a ``wdir`` reads its
    params file (the default one too) from there, as DVC does."""
    if posixpath.normpath(spec.wdir) == ".":
        return spec.params
    out = []
    for param in spec.params:
        name, sep, key = param.rpartition(":")
        out.append(f"{posixpath.normpath(_in_wdir(spec, name if sep else default_file))}:{key}")
    return tuple(out)


def _paths(name: str, spec: StageSpec) -> tuple[tuple[str, ...], ...]:
    try:
        deps = tuple(declared_path(_in_wdir(spec, d), f"stage '{name}' dependency") for d in spec.deps)
        outs = tuple(declared_path(_in_wdir(spec, o), f"stage '{name}' output") for o in spec.outs)
        metrics = tuple(declared_path(_in_wdir(spec, m), f"stage '{name}' metrics file") for m in spec.metrics)
        plots = tuple(declared_path(_in_wdir(spec, p), f"stage '{name}' plots file") for p in spec.plots)
        refuse_project_files((*outs, *metrics, *plots), f"stage '{name}' output")
        for out in (*outs, *metrics, *plots):
            refuse_reserved(out, f"stage '{name}' output")
    except InvalidInputError as exc:
        raise ConfigError(str(exc)) from exc
    return deps, outs, metrics, plots


def _near(root: Path, dep: str, outs: list[str]) -> str:
    """A suggestion for a mistyped dependency: the closest existing sibling path or stage output."""
    import difflib

    parent = (root / dep).parent
    siblings = [str((parent / n).relative_to(root)) for n in (sorted(os.listdir(parent)) if parent.is_dir() else [])]
    match = difflib.get_close_matches(dep, [*outs, *siblings], n=1, cutoff=0.75)
    return f" (did you mean {match[0]}?)" if match else ""
