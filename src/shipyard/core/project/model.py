"""The project configuration as plain frozen values: what the rest of Shipyard reads.

``schema.py`` (pydantic) validates shipyard.yaml and produces these; a validated configuration is
cached by the file's digest, so commands that only read it never pay for building the validator.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Remote:
    url: str
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    allow_http: bool = False
    layout: str = "shipyard"  # or "dvc": a DVC HTTP remote, read-only (objects named by md5)
    access_key_id: str | None = None  # secret references (core.secrets), resolved when the remote is opened
    secret_access_key: str | None = None
    session_token: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")


@dataclass(frozen=True, slots=True)
class Executor:
    kind: str = "local"
    address: str | None = None
    num_cpus: float = 1.0


@dataclass(frozen=True, slots=True)
class StageDef:
    cmd: str
    deps: tuple[str, ...] = ()
    params: tuple[str, ...] = ()  # "key" (the default params file) or "FILE:key"
    outs: tuple[str, ...] = ()  # paths as written (relative to wdir)
    metrics: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    wdir: str = "."
    desc: str | None = None
    plots: tuple[str, ...] = ()  # files the stage writes for plots (their options: Project.plots)
    uncached: tuple[str, ...] = ()  # outs/metrics/plots with `cache: false`: not stored, git keeps them
    persist: tuple[str, ...] = ()  # outs with `persist: true`: not removed before the stage runs
    frozen: bool = False
    always_changed: bool = False


@dataclass(frozen=True, slots=True)
class ModelDef:
    """A stage output ``shipyard run`` registers as a model version (shipyard.yaml ``models:``)."""

    path: str
    flavor: str
    examples: str | None = None
    metrics: str | None = None  # a stage name
    desc: str | None = None
    labels: tuple[str, ...] = ()
    code_paths: tuple[str, ...] = ()
    reference: str | None = None  # training data (or a sample): the version's reference profile for drift


@dataclass(frozen=True, slots=True)
class Project:
    version: int = 1
    params: str = "params.yaml"
    default_remote: str | None = None
    remotes: dict[str, Remote] = field(default_factory=dict)
    store: Remote | None = None  # the team's primary object store; None: the project's own folder
    executor: Executor = field(default_factory=Executor)
    stages: dict[str, StageDef] = field(default_factory=dict)
    deploy: dict[str, Any] = field(default_factory=dict)  # validated; core.deploy.config.deploy_config reads it
    ci: dict[str, Any] = field(default_factory=dict)  # validated; core.deploy.config.ci_config reads it
    # validated; core.governance.config's policy_config, secrets_config, signing_config, scan_config read them
    policy: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict)
    signing: dict[str, Any] = field(default_factory=dict)
    scan: dict[str, Any] = field(default_factory=dict)
    monitoring: dict[str, Any] = field(default_factory=dict)  # core.monitoring.config.monitoring_config reads it
    metrics: tuple[str, ...] = ()  # top-level metrics files (DVC's), besides the stages'
    params_files: tuple[str, ...] = ()  # more params files to show (DVC's top-level params list)
    # plot entries as validated, top-level then each stage's (a path, or {path or id: options}); core.plots reads them
    plots: tuple[Any, ...] = ()
    models: dict[str, ModelDef] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Project:
        return cls(
            version=d["version"], params=d["params"], default_remote=d.get("default_remote"),
            remotes={k: Remote(**v) for k, v in d["remotes"].items()},
            store=Remote(**d["store"]) if d.get("store") else None,
            executor=Executor(**d["executor"]),
            stages={k: _stage(v) for k, v in d["stages"].items()},
            deploy=d.get("deploy") or {}, ci=d.get("ci") or {}, policy=d.get("policy") or {},
            secrets=d.get("secrets") or {}, signing=d.get("signing") or {}, scan=d.get("scan") or {},
            monitoring=d.get("monitoring") or {},
            metrics=tuple(d.get("metrics") or ()), params_files=tuple(d.get("params_files") or ()),
            plots=tuple(d.get("plots") or ()) + tuple(
                p for s in d["stages"].values() if "uncached" not in s  # validated, not from the cache
                for p in s.get("plots") or ()),
            models={k: _model(v) for k, v in (d.get("models") or {}).items()},
        )


def _paths(entries: Any) -> tuple[str, ...]:
    """The paths of outs/metrics/plots entries: ``path`` or ``{path: options}``."""
    return tuple(e if isinstance(e, str) else next(iter(e)) for e in entries or ())


def _flagged(d: dict[str, Any], option: str, default: bool) -> tuple[str, ...]:
    """The paths of the stage's outs/metrics/plots whose ``option`` is not ``default``."""
    found = []
    for section in ("outs", "metrics", "plots"):
        for e in d.get(section) or ():
            if isinstance(e, dict):
                path, opts = next(iter(e.items()))
                if isinstance(opts, dict) and opts.get(option, default) != default:
                    found.append(path)
    return tuple(found)


def _stage(d: dict[str, Any]) -> StageDef:
    if "uncached" in d:  # from to_dict (the config cache)
        return StageDef(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})  # type: ignore[arg-type]
    return StageDef(cmd=d["cmd"], deps=tuple(d["deps"]), params=tuple(d["params"]), outs=_paths(d["outs"]),
                    metrics=_paths(d["metrics"]), env=tuple(d["env"]), wdir=d["wdir"], desc=d.get("desc"),
                    plots=_paths(d.get("plots")), uncached=_flagged(d, "cache", True),
                    persist=_flagged(d, "persist", False), frozen=bool(d.get("frozen")),
                    always_changed=bool(d.get("always_changed")))


def _model(d: dict[str, Any]) -> ModelDef:
    return ModelDef(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})  # type: ignore[arg-type]
