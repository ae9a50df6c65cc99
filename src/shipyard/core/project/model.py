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
    params: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    wdir: str = "."


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
        )


def _stage(d: dict[str, Any]) -> StageDef:
    return StageDef(cmd=d["cmd"], deps=tuple(d["deps"]), params=tuple(d["params"]), outs=tuple(d["outs"]),
                    metrics=tuple(d["metrics"]), env=tuple(d["env"]), wdir=d["wdir"])
