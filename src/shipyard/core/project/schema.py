"""What ``shipyard.yaml`` may say: remotes, the executor, the pipeline's stages, delivery and CI."""

from __future__ import annotations

import posixpath
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shipyard.core.deploy.ci_config import CISpec
from shipyard.core.deploy.config import DeploySpec
from shipyard.core.governance.config import PolicySpec, ScanSpec, SecretsSpec, SigningSpec
from shipyard.core.monitoring.config import MonitoringSpec
from shipyard.core.plots.spec import validate as validate_plots
from shipyard.core.workspace.paths import declared_path, reserved_reason
from shipyard.errors import InvalidInputError

STAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z: "$" would let a final newline through
# a stage foreach or matrix generated: NAME@KEY, the key as DVC makes it (an item, a dict key, "cnn-feature1")
GENERATED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}@[^\x00-\x1f\x7f]{1,128}\Z")
DEFAULT_PARAMS_FILE = "params.yaml"


def params_file(name: str) -> str:
    """``name`` if it is a params file inside the project; Shipyard never reads params from elsewhere."""
    try:
        return declared_path(name, "params file")
    except InvalidInputError as exc:
        raise ValueError(str(exc)) from None


def listify(v: object) -> object:
    """A list field as YAML may write it: one string, a list, or nothing (a key with its entries commented out)."""
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    if isinstance(v, list):
        return tuple(v)
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RemoteSpec(_Strict):
    """Where objects are pushed to and pulled from: a folder, or S3-compatible storage."""

    url: str = Field(description="s3://bucket/prefix, a folder path, or file:///folder")
    endpoint_url: str | None = Field(None, description="S3 endpoint for non-AWS storage, e.g. http://127.0.0.1:9000")
    region: str | None = None
    profile: str | None = None
    allow_http: bool = False
    layout: Literal["shipyard", "dvc"] = Field(
        "shipyard", description="dvc: a DVC HTTP remote (http(s)://..., objects by md5), read-only: data converted "
                                "by `shipyard init --from-dvc` is pulled from it")
    # the S3 keys, as secret references (env:NAME, file:PATH, vault:MOUNT/PATH#KEY), never values
    access_key_id: str | None = Field(None, description="a reference to the access key id, e.g. "
                                                        "vault:secret/shipyard/s3#access_key_id")
    secret_access_key: str | None = Field(None, description="a reference to the secret access key")
    session_token: str | None = Field(None, description="a reference to a session token (temporary keys)")

    @field_validator("access_key_id", "secret_access_key", "session_token")
    @classmethod
    def _references(cls, v: str | None, info: ValidationInfo) -> str | None:
        from shipyard.core.secrets import check_reference

        return None if v is None else check_reference(v, info.field_name or "a credential")

    @model_validator(mode="after")
    def _both_keys(self) -> RemoteSpec:
        if self.layout == "dvc" and not re.match(r"(?i)https?://[^/?#\s]", self.url):
            raise ValueError("layout: dvc is for a DVC HTTP remote: its url should be http(s)://HOST/PATH")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key (references), or neither")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token goes with access_key_id and secret_access_key")
        return self

    @field_validator("endpoint_url")
    @classmethod
    def _http_endpoint(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"(?i)https?://[^/?#\s]", v):
            raise ValueError("should be an http:// or https:// URL, e.g. http://127.0.0.1:9000")
        return v

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")


class ExecutorSpec(_Strict):
    kind: Literal["local", "ray"] = "local"
    address: str | None = Field(None, description="Ray head address (host:port), for kind: ray")
    num_cpus: float = 1.0


class OutOptions(_Strict):
    """DVC's per-output options (``outs: [{model.pkl: {cache: false}}]``)."""

    cache: bool = Field(True, description="false: the file is not stored; git keeps it (DVC's cache: false)")
    persist: bool = Field(False, description="true: the output is not removed before the stage runs")
    desc: str | None = None


# One output, a metrics file or a plot file as DVC writes it: a path, or {path: options}.
OutEntry = str | dict[str, OutOptions]
# One plot: a data or image file the stage writes, or {path: plot options} (x, y, template, title, ...).
PlotEntry = str | dict[str, dict[str, object] | None]


def _param_specs(v: object) -> object:
    """DVC's params entries as ``key`` / ``FILE:key`` strings: ``{FILE: [keys]}`` gives ``FILE:key`` each, and
    ``{FILE: null}`` (or ``[]``) gives ``FILE:`` (all of the file's params, as DVC tracks them)."""
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, list | tuple):
        return v
    out: list[object] = []
    for entry in v:
        if not isinstance(entry, dict):
            out.append(entry)
            continue
        for name, keys in entry.items():
            if not isinstance(name, str):
                raise ValueError(f"params file name {name!r} should be text")
            if keys is None or keys == [] or keys == ():
                out.append(f"{name}:")
            elif isinstance(keys, str):
                out.append(f"{name}:{keys}")
            elif isinstance(keys, list):
                for key in keys:
                    if not isinstance(key, str) or not key:
                        raise ValueError(f"params of {name}: {key!r} should be a key (text)")
                    out.append(f"{name}:{key}")
            else:
                raise ValueError(f"params of {name} should be a list of keys, or empty for all of them")
    return tuple(out)


class StageSpec(_Strict):
    cmd: str = Field(description="the shell command; DVC's list of commands runs them in order (joined with &&)")
    desc: str | None = Field(None, description="what the stage does, shown by `shipyard status`")
    deps: tuple[str, ...] = ()
    params: tuple[str, ...] = Field((), description="dotted keys in the params file; FILE:key for another file; "
                                                    "DVC's {FILE: [keys]} form too")
    outs: tuple[OutEntry, ...] = ()
    metrics: tuple[OutEntry, ...] = Field((), description="JSON or YAML files of numbers the stage writes")
    plots: tuple[PlotEntry, ...] = Field((), description="JSON/CSV/TSV data or images the stage writes, to plot")
    env: tuple[str, ...] = Field((), description="environment variables whose values are part of the fingerprint")
    wdir: str = "."
    frozen: bool = Field(False, description="true: never run; its recorded outputs are used as they are")
    always_changed: bool = Field(False, description="true: run every time, as if an input had changed")
    meta: object = Field(None, description="anything; ignored, as DVC ignores it")

    @field_validator("cmd", mode="before")
    @classmethod
    def _commands(cls, v: object) -> object:
        if isinstance(v, list) and v and all(isinstance(c, str) and c.strip() for c in v):
            return " && ".join(c.strip() for c in v)  # DVC runs them in order and stops at the first failure
        if isinstance(v, list):
            raise ValueError("should be text: a command, or a list of commands (none empty)")
        return v

    @field_validator("deps", "outs", "metrics", "plots", "env", mode="before")
    @classmethod
    def _listify(cls, v: object) -> object:
        return listify(v)

    @field_validator("params", mode="before")
    @classmethod
    def _dict_params(cls, v: object) -> object:
        return () if v is None else _param_specs(v)

    @field_validator("params")
    @classmethod
    def _params_files(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for spec in v:
            name, sep, key = spec.rpartition(":")
            if sep and (name.startswith("/") or not name):
                params_file(name)  # relative ones are checked from the stage's wdir, once it is known (below)
            elif not sep and not key:
                raise ValueError(f"param {spec!r} names no key: use KEY, FILE:KEY, or FILE: for all of FILE's")
        return v

    @model_validator(mode="after")
    def _params_from_wdir(self) -> StageSpec:
        """A params file is taken from the stage's wdir, as its deps and outs are (DVC's ``../params.yaml``)."""
        wdir = posixpath.normpath(self.wdir)
        for spec in self.params:
            name, sep, _ = spec.rpartition(":")
            if sep:
                try:
                    declared_path(name if wdir == "." else posixpath.join(wdir, name), "params file")
                except InvalidInputError:
                    where = "" if wdir == "." else f" (taken from the stage's wdir {wdir})"
                    raise ValueError(f"params: params file {name!r} is outside the project{where}: use a path "
                                     "relative to the stage's working folder that stays inside the project") from None
        return self

    @field_validator("wdir")
    @classmethod
    def _wdir(cls, v: str) -> str:
        if posixpath.normpath(v) != ".":
            try:
                declared_path(v, "working folder")
            except InvalidInputError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("cmd")
    @classmethod
    def _cmd(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("cmd is empty")
        return v

    @field_validator("plots")
    @classmethod
    def _plots(cls, v: tuple[PlotEntry, ...]) -> tuple[PlotEntry, ...]:
        validate_plots(v, confine=False)  # x, y, template, ... as dvc.yaml writes them; paths from wdir
        return v

    @field_validator("outs", "metrics", "plots")
    @classmethod
    def _not_reserved(cls, v: tuple[OutEntry | PlotEntry, ...]) -> tuple[OutEntry | PlotEntry, ...]:
        """An output inside .git/ or .shipyard/ (as written; the stage graph checks it from wdir too)."""
        for entry in v:
            for path in [entry] if isinstance(entry, str) else list(entry):
                why = reserved_reason(posixpath.normpath(path))
                if why is not None:
                    raise ValueError(f"{path!r} is refused: {why}; a stage never writes there")
        return v


MAX_MODEL_DESC = 4096
MAX_MODEL_LABELS = 64
MAX_MODEL_LABEL = 64


class ModelSpec(_Strict):
    """A stage output that ``shipyard run`` registers as a version of the model named by the key (DVC's
    ``artifacts:`` with ``type: model``)."""

    path: str = Field(description="the stage output holding the model: a file (model.pkl) or a folder")
    flavor: Literal["sklearn", "torch", "onnx", "python"] = Field(description="sklearn, torch, onnx or python")
    examples: str | None = Field(None, description="a file of golden inputs (.npy, .npz, .csv, .json)")
    metrics: str | None = Field(None, description="the stage whose metrics are recorded with the version")
    desc: str | None = None
    labels: tuple[str, ...] = ()
    code_paths: tuple[str, ...] = Field((), description="project folders or files the model's code needs "
                                                        "(python flavor), stored with the version")
    reference: str | None = Field(None, description="the training data, or a sample (.npy, .npz, .csv, .json): "
                                                    "profiled as the version's reference for drift")

    @field_validator("labels", "code_paths", mode="before")
    @classmethod
    def _listify(cls, v: object) -> object:
        return listify(v)

    @field_validator("desc", "labels")
    @classmethod
    def _bounded(cls, v: str | tuple[str, ...] | None, info: ValidationInfo) -> str | tuple[str, ...] | None:
        # stored in every version's description, which can never be changed: a few lines, a few short labels
        if isinstance(v, str) and len(v) > MAX_MODEL_DESC:
            raise ValueError(f"is {len(v)} characters: at most {MAX_MODEL_DESC}")
        if isinstance(v, tuple) and (len(v) > MAX_MODEL_LABELS or any(len(x) > MAX_MODEL_LABEL for x in v)):
            raise ValueError(f"at most {MAX_MODEL_LABELS} labels of at most {MAX_MODEL_LABEL} characters each")
        return v

    @field_validator("path", "examples", "code_paths", "reference")
    @classmethod
    def _inside(cls, v: str | tuple[str, ...] | None, info: ValidationInfo) -> str | tuple[str, ...] | None:
        try:
            if isinstance(v, tuple):
                return tuple(declared_path(p, f"model {info.field_name}") for p in v)
            return v if v is None else declared_path(v, f"model {info.field_name}")
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None


class ProjectConfig(_Strict):
    version: Literal[1] = 1
    params: str = DEFAULT_PARAMS_FILE
    default_remote: str | None = None
    remotes: dict[str, RemoteSpec] = {}
    store: RemoteSpec | None = Field(None, description="the team's primary object store: s3://bucket/prefix (with "
                                     "endpoint_url, region, profile as for a remote) or a folder on a shared mount; "
                                     "default: the project's .shipyard/objects")
    executor: ExecutorSpec = ExecutorSpec()
    stages: dict[str, StageSpec] = {}
    deploy: DeploySpec = DeploySpec()
    ci: CISpec = CISpec()
    policy: PolicySpec = PolicySpec()
    secrets: SecretsSpec = SecretsSpec()
    signing: SigningSpec = SigningSpec()
    scan: ScanSpec = ScanSpec()
    monitoring: MonitoringSpec = MonitoringSpec()
    metrics: tuple[str, ...] = Field((), description="metrics files shown by `exp show` and `metrics diff` "
                                                     "(DVC's top-level metrics), besides the stages' own")
    params_files: tuple[str, ...] = Field((), description="more params files shown by `exp show` and `params diff` "
                                                          "(DVC's top-level `params:` list)")
    plots: tuple[PlotEntry, ...] = Field((), description="plots over stage outputs (DVC's top-level plots)")
    models: dict[str, ModelSpec] = Field({}, description="stage outputs registered as model versions by `shipyard run`")

    @model_validator(mode="before")
    @classmethod
    def _dvc_params_list(cls, data: object) -> object:
        # DVC's top-level `params:` is a list of params files to show; ours (a string) names the default file
        if isinstance(data, dict) and isinstance(data.get("params"), list):
            data = dict(data)
            data["params_files"] = tuple(data.pop("params"))
        return data

    @field_validator("params")
    @classmethod
    def _params_file(cls, v: str) -> str:
        params_file(v)
        return v

    @field_validator("metrics", "params_files", "plots", mode="before")
    @classmethod
    def _listify(cls, v: object) -> object:
        return listify(v)

    @field_validator("plots")
    @classmethod
    def _plots(cls, v: tuple[PlotEntry, ...]) -> tuple[PlotEntry, ...]:
        validate_plots(v)
        return v

    @field_validator("store", mode="before")
    @classmethod
    def _store_url(cls, v: object) -> object:
        if isinstance(v, str):  # `store: s3://bucket/prefix`, the short form
            if not v.strip():
                raise ValueError("is empty: give s3://bucket/prefix or a folder, or remove the key (the project's "
                                 ".shipyard/objects is then the store)")
            return {"url": v}
        if v is not None and not isinstance(v, dict):
            raise ValueError(f"should be a URL string (s3://bucket/prefix, or a folder) or a mapping (url:, "
                             f"endpoint_url:, region:, profile:) (got {type(v).__name__} {str(v)[:40]})")
        return v

    @field_validator("stages", "remotes", "models", mode="before")
    @classmethod
    def _empty_section(cls, v: object) -> object:
        return {} if v is None else v  # `stages:` with its entries commented out, as the template shows them

    @field_validator("stages")
    @classmethod
    def _stage_names(cls, v: dict[str, StageSpec]) -> dict[str, StageSpec]:
        for name in v:
            if not (STAGE_NAME.match(name) or GENERATED_NAME.match(name)):
                raise ValueError(f"invalid stage name {name!r}: letters, digits, '_', '.', '-'")
        return v

    @field_validator("models")
    @classmethod
    def _model_names(cls, v: dict[str, ModelSpec]) -> dict[str, ModelSpec]:
        from shipyard.core.registry.refs import check_model_name

        for name in v:
            try:
                check_model_name(name)
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _default_remote_exists(self) -> ProjectConfig:
        if self.default_remote is not None and self.default_remote not in self.remotes:
            raise ValueError(f"default_remote {self.default_remote!r} is not one of the remotes")
        return self
