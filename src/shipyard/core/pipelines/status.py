"""Why a stage would run: fingerprints (cmd + dependency digests + params + declared env) against the lock."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.core.artifacts.digest import Digest
from shipyard.core.pipelines.dag import Pipeline, Stage
from shipyard.core.pipelines.params import ParamFiles
from shipyard.core.secrets import redact_environ
from shipyard.core.workspace.data import Workspace, describe
from shipyard.core.workspace.lockfile import Lock, StageEntry, deps_to_dict


@dataclass(frozen=True, slots=True)
class Inputs:
    deps: dict[str, Digest | None]  # path -> digest (None while an upstream stage has yet to produce it)
    params: dict[str, Any]
    env: dict[str, str]

    def fingerprint(self, stage: Stage) -> Digest:
        body: dict[str, Any] = {"cmd": stage.spec.cmd, "wdir": stage.spec.wdir, "deps": deps_to_dict(self.deps),
                                "params": self.params, "env": self.env, "outs": list(stage.outs),
                                "metrics": list(stage.metrics)}
        if stage.plots:  # only when there are some: the fingerprints of stages without plots stay as they were
            body["plots"] = list(stage.plots)
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        return Digest.of_bytes(canonical.encode())


@dataclass
class StageStatus:
    name: str
    state: str  # "up-to-date", "changed", "never-run", "forced", "frozen"
    reasons: list[str] = field(default_factory=list)
    desc: str | None = None  # the stage's desc in shipyard.yaml

    @property
    def must_run(self) -> bool:
        return self.state not in ("up-to-date", "frozen")

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"stage": self.name, "state": self.state, "reasons": self.reasons}
        if self.desc:
            d["desc"] = self.desc
        return d


def inputs_of(ws: Workspace, stage: Stage, params: ParamFiles, environ: Mapping[str, str]) -> Inputs:
    deps: dict[str, Digest | None] = {}
    for dep in stage.deps:
        entry = describe(ws, dep)
        deps[dep] = entry.digest if entry else None
    # a declared variable that looks like a credential counts as set or unset, never by its value: its digest
    # goes into shipyard.lock (committed), where a weak password could be found again by trying candidates, and
    # rotating a credential changes no output
    return Inputs(deps, params.values(stage.name, stage.params), redact_environ(
        {k: environ.get(k, "") for k in stage.spec.env}, keep_empty=True))


def explain(stage: Stage, now: Inputs, fingerprint: Digest, recorded: StageEntry | None,
            ws: Workspace) -> list[str]:
    """Reasons the stage is out of date; empty when its recorded result still holds."""
    if recorded is None:
        return ["never run"]
    reasons = ["always_changed: true"] if stage.spec.always_changed else []
    if recorded.fingerprint != fingerprint:
        if recorded.cmd != stage.spec.cmd:
            reasons.append("command changed")
        for path, digest in now.deps.items():
            old = recorded.deps.get(path)
            if old is None:
                reasons.append(f"new dependency {path}")
            elif old != digest:
                reasons.append(f"dependency {path} changed")
        reasons.extend(f"dependency {p} removed" for p in recorded.deps if p not in now.deps)
        for key, value in now.params.items():
            if key not in recorded.params:
                reasons.append(f"new param {key} = {value!r}")
            elif recorded.params[key] != value:
                reasons.append(f"param {key} changed: {recorded.params[key]!r} -> {value!r}")
        if not reasons or reasons == ["always_changed: true"]:
            reasons.append("outputs, metrics, env or working directory changed")
    for path in stage.produced:
        if path in stage.uncached:  # not stored, so no digest recorded: only its absence counts
            if not ws.abs(path).exists():
                reasons.append(f"output {path} is missing")
            continue
        entry = describe(ws, path)
        kept = recorded.outs.get(path)
        if entry is None:
            reasons.append(f"output {path} is missing")
        elif kept is None or kept.digest != entry.digest:
            reasons.append(f"output {path} was modified")
    return reasons


def check(pipeline: Pipeline, names: list[str], ws: Workspace, lock: Lock, params: ParamFiles,
          environ: Mapping[str, str], forced: Collection[str] = ()) -> list[StageStatus]:
    """The status of each stage in ``names`` (run order), as `shipyard status` shows it; ``forced`` would run anyway."""
    out = []
    will_run: set[str] = set()
    for name in names:
        stage = pipeline.stages[name]
        if stage.spec.frozen:
            said = ("frozen: never runs; its recorded outputs are used" if name in lock.stages else
                    "frozen, and never run: shipyard.lock has no outputs of it to use (`shipyard run` refuses it)")
            out.append(StageStatus(name, "frozen", [said], stage.spec.desc))
            continue
        if name in forced:
            st = StageStatus(name, "forced", ["--force"])
        elif stage.upstream & will_run:
            st = StageStatus(name, "changed", [f"upstream stage {u} will run"
                                               for u in sorted(stage.upstream & will_run)])
        else:
            now = inputs_of(ws, stage, params, environ)
            reasons = explain(stage, now, now.fingerprint(stage), lock.stages.get(name), ws)
            state = "up-to-date" if not reasons else "never-run" if reasons == ["never run"] else "changed"
            st = StageStatus(name, state, reasons)
        st.desc = stage.spec.desc
        if st.must_run:
            will_run.add(name)
        out.append(st)
    return out
