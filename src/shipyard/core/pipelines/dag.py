"""The stage graph: validated before anything runs (cycles, missing deps, clashing or escaping outputs)."""

from __future__ import annotations

import graphlib
import os
import posixpath
from collections.abc import Callable, Iterable
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
    owners: list[tuple[str, str, bool]] = []  # (stage, path, is an `outs` entry)
    for name, (_, outs, metrics, plots) in paths.items():
        for out, is_out in (*((o, True) for o in outs), *((m, False) for m in (*metrics, *plots))):
            for other, claimed, claimed_out in owners:
                if other == name and out != claimed and is_out != claimed_out:
                    continue  # a metrics or plots file in the stage's own output folder (dvclive writes there)
                if other == name and out == claimed and not (is_out and claimed_out):
                    continue  # a plots file that is also the stage's metrics file, or written twice
                if overlaps(out, claimed):
                    who = f"stages '{other}' and '{name}'" if other != name else f"stage '{name}'"
                    raise ConfigError(f"{who} both claim output {claimed if len(claimed) <= len(out) else out}: "
                                      "each output belongs to one stage")
            owners.append((name, out, is_out))
    stages = {}
    graph: dict[str, set[str]] = {}
    for name, (deps, outs, metrics, plots) in paths.items():
        upstream = set()
        for dep in deps:
            producers = {owner for owner, out, _ in owners if overlaps(dep, out)}
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
    _refuse_inputs_as_outputs(stages, config.params, root)
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


def _refuse_inputs_as_outputs(stages: dict[str, Stage], default_file: str, root: Path) -> None:
    """An output is removed before its stage runs: refuse one that is a params file (an input, like a
    dependency) or a virtualenv, before anything is removed."""
    inputs = {f: name for name, stage in stages.items() for f in params_files(stage, default_file)}
    for name, stage in stages.items():
        for out in stage.produced:
            for file, reader in inputs.items():
                if overlaps(out, file):
                    raise ConfigError(f"stage '{name}' declares {out} as an output, but it is (or holds) the params "
                                      f"file {file} stage '{reader}' reads: outputs are removed before their stage "
                                      "runs; remove it from the outputs")
            if out not in stage.persist and os.path.lexists(root / out / VENV_MARK):
                raise ConfigError(f"stage '{name}' declares {out} as an output, but it is a Python virtualenv "
                                  f"(it holds {VENV_MARK}): outputs are removed before their stage runs; "
                                  "remove it from the outputs")


def refuse_tracked_outputs(pipeline: Pipeline, data_paths: Iterable[str],
                           git_tracked: Callable[[list[str]], str | None]) -> None:
    """Refuse a stored output that ``shipyard data add`` tracks or git tracks (``git_tracked`` returns one of
    the paths it is given that git tracks a file at or under): as DVC does, since an output is removed before
    its stage runs and a stage's outputs are kept by Shipyard, not git (``cache: false`` outputs are git's)."""
    owner = {out: name for name, stage in pipeline.stages.items() for out in stage.stored}
    produced = {out: name for name, stage in pipeline.stages.items() for out in stage.produced}
    for path in data_paths:
        for out, name in produced.items():
            if overlaps(out, path):
                raise ConfigError(f"stage '{name}' declares {out} as an output, but {path} is tracked with "
                                  f"`shipyard data add` (shipyard.lock's data): a path is either data you add or a "
                                  "stage's output, and outputs are removed before their stage runs; remove it from "
                                  "the outputs")
    tracked = git_tracked(sorted(owner))
    if tracked is not None:
        raise ConfigError(f"stage '{owner[tracked]}' declares {tracked} as an output, but git tracks it (git ls-files "
                          f"{tracked}): outputs are removed before their stage runs and Shipyard, not git, keeps "
                          f"them; `git rm -r --cached {tracked}` first, or declare it with cache: false")


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
