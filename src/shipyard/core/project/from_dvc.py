"""``shipyard init --from-dvc``, the pure part: DVC's files read as plain values, and shipyard.yaml planned.

Everything here reads text someone else wrote (``dvc.yaml``, ``.dvc`` files, ``dvc.lock``,
``.dvc/config``): each path must stay inside the project (no ``..``, nothing absolute), each
hash must be one DVC writes (32 hex digits, ``.dir`` for a folder), and a value of the wrong
type is a one-line problem in the report, never a crash. The I/O (hashing, copying into the
store, writing the files) is in ``shipyard.wiring.from_dvc``.
"""

from __future__ import annotations

import configparser
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from shipyard.core.artifacts.manifest import file_and_folder
from shipyard.core.project.model import StageDef
from shipyard.core.redact import USERINFO, has_userinfo
from shipyard.core.workspace.paths import declared_path, safe_relpath
from shipyard.errors import InvalidInputError

MD5 = re.compile(r"[0-9a-f]{32}")
# what a model file's extension says about its flavor (DVC's artifacts name no framework)
FLAVORS = {".pkl": "sklearn", ".pickle": "sklearn", ".joblib": "sklearn", ".skops": "sklearn",
           ".pt": "torch", ".pth": "torch", ".onnx": "onnx"}
CARRIED_KEYS = ("stages", "vars", "params", "metrics", "plots")
REMOTE_SECTION = re.compile(r"""^\s*'?remote\s+"([^"]+)"'?\s*$""")
CREDENTIALS = ("access_key_id", "secret_access_key", "session_token", "password", "user", "ask_password",
               "credentialpath", "keyfile", "gdrive_client_secret", "connection_string", "account_key", "sas_token")
HTTP_AUTH = ("auth", "custom_auth_header")  # a DVC HTTP remote's authentication (its values: user, password)


@dataclass
class Report:
    """What the conversion did and what it could not carry over (``not_carried``: (what, why))."""

    written: list[str] = field(default_factory=list)
    data: dict[str, str] = field(default_factory=dict)  # path -> where its bytes came from
    stages: dict[str, str] = field(default_factory=dict)  # stage -> recorded, or why not
    remotes: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    # model -> the stages to run again to register it (its producer and its metrics stage); `registration`
    # says how, once the stages' state is known
    model_stages: dict[str, list[str]] = field(default_factory=dict)
    not_carried: list[tuple[str, str]] = field(default_factory=list)

    def skip(self, what: str, why: str) -> None:
        self.not_carried.append((what, " ".join(why.split())[:300]))

    def registration(self, recorded: set[str]) -> None:
        """Say in each model's line how it gets registered: by the first ``shipyard run`` when one of its
        stages runs anyway (not recorded from dvc.lock), else by re-running them once (DVC's file is never
        unpickled, so a version needs a run of Shipyard's own)."""
        for name, stages in self.model_stages.items():
            if not stages:
                how = "its stage's next run"
            elif not set(stages) & recorded:
                how = "the first `shipyard run`"
            else:
                how = f"`shipyard run --force {' '.join(stages)}` (a file DVC wrote is never unpickled)"
            self.models[name] += f"; registered by {how}"

    def to_dict(self) -> dict[str, object]:
        return {"written": self.written, "data": self.data, "stages": self.stages, "remotes": self.remotes,
                "models": self.models, "not_carried": [{"what": w, "why": y} for w, y in self.not_carried]}


@dataclass(frozen=True, slots=True)
class DvcOut:
    """One output or dependency DVC recorded: a project-relative path and its md5 (``None``: none recorded)."""

    path: str
    md5: str | None
    size: int | None = None
    is_dir: bool = False
    legacy: bool = False  # DVC 2's md5 (text files hashed with CRLF turned to LF), kept in .dvc/cache/xx/
    cached: bool = True

    def cache_key(self) -> str | None:
        """Where DVC's cache keeps it, relative to the cache folder (None: no md5)."""
        if self.md5 is None:
            return None
        name = self.md5 + (".dir" if self.is_dir else "")
        return f"{name[:2]}/{name[2:]}" if self.legacy else f"files/md5/{name[:2]}/{name[2:]}"


@dataclass(frozen=True, slots=True)
class DvcLockStage:
    name: str
    cmd: str
    deps: tuple[DvcOut, ...]
    params: dict[str, dict[str, Any]]  # params file (project-relative) -> {dotted key: value}
    outs: tuple[DvcOut, ...]


@dataclass(frozen=True, slots=True)
class DirEntry:
    """One file of a folder DVC recorded (from its ``.dir`` object)."""

    relpath: str
    md5: str
    size: int | None
    executable: bool


class BadDvcFile(ValueError):
    """A DVC file that is not what DVC writes; the message says what is wrong."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text)} characters)"


def project_rel(base: str, path: object, what: str) -> str:
    """``path`` (relative to the project folder ``base``, '' for the top) as a clean project-relative path."""
    if not isinstance(path, str) or not path:
        raise BadDvcFile(f"{what} {_shown(path)} is not a path")
    joined = posixpath.join(base, path) if base else path
    try:
        return declared_path(joined, what)
    except InvalidInputError:
        raise BadDvcFile(f"{what} {_shown(path)} leads outside the project: nothing there is read") from None


def parse_out(entry: object, base: str, what: str) -> DvcOut:
    """An entry of a ``.dvc`` file's ``outs`` or of a ``dvc.lock`` stage's ``deps``/``outs``."""
    if not isinstance(entry, dict):
        raise BadDvcFile(f"{what} is not a mapping")
    path = project_rel(base, entry.get("path"), f"{what} path")
    md5 = entry.get("md5")
    is_dir = False
    if md5 is not None:
        if not isinstance(md5, str):
            raise BadDvcFile(f"{what} {path}: md5 {_shown(md5)} is not a string")
        is_dir = md5.endswith(".dir")
        md5 = md5.removesuffix(".dir")
        if not MD5.fullmatch(md5):
            raise BadDvcFile(f"{what} {path}: md5 {_shown(md5)} is not an md5 hash")
    size = entry.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise BadDvcFile(f"{what} {path}: size {_shown(size)} is not a whole number")
    hash_name = entry.get("hash")
    if hash_name not in (None, "md5"):
        raise BadDvcFile(f"{what} {path}: hash {_shown(hash_name)} is not one Shipyard reads (md5)")
    cached = entry.get("cache", True)
    return DvcOut(path, md5, size, is_dir, legacy=hash_name is None, cached=cached is not False)


def parse_dvc_file(body: object, rel: str) -> list[DvcOut]:
    """The outputs a ``.dvc`` file (at project path ``rel``) tracks; paths are relative to its folder."""
    if not isinstance(body, dict):
        raise BadDvcFile(f"{rel} is not a mapping")
    outs = body.get("outs")
    if not isinstance(outs, list) or not outs:
        raise BadDvcFile(f"{rel} has no outs list")
    if body.get("deps"):
        raise BadDvcFile(f"{rel} has deps: an import (dvc import/import-url), which Shipyard does not carry over")
    base = posixpath.dirname(rel)
    return [parse_out(o, base, f"{rel} out") for o in outs]


def stage_wdirs(dvc_yaml: object) -> dict[str, str]:
    """Each plainly written stage's ``wdir`` (dvc.lock's paths are relative to it); '' for the top."""
    out: dict[str, str] = {}
    stages = dvc_yaml.get("stages") if isinstance(dvc_yaml, dict) else None
    for name, spec in (stages or {}).items() if isinstance(stages, dict) else ():
        wdir = spec.get("wdir", ".") if isinstance(spec, dict) else "."
        if isinstance(wdir, str) and posixpath.normpath(wdir) != "." and "${" not in wdir:
            try:
                out[str(name)] = declared_path(wdir, "wdir")
            except InvalidInputError:
                out[str(name)] = ""
        else:
            out[str(name)] = ""
    return out


def parse_dvc_lock(body: object, wdirs: dict[str, str], report: Report) -> dict[str, DvcLockStage]:
    """dvc.lock's stages (schema 2.0); a damaged stage entry is a problem in ``report``, not an error."""
    if body is None:  # no dvc.lock: nothing ran under DVC
        return {}
    if not isinstance(body, dict) or not isinstance(body.get("stages"), dict):
        report.skip("dvc.lock", "not a DVC 2.0 lock (no stages mapping): stages will run once under Shipyard")
        return {}
    out = {}
    for name, entry in body["stages"].items():
        base = wdirs.get(str(name).split("@")[0], "")
        try:
            if not isinstance(entry, dict):
                raise BadDvcFile("not a mapping")
            cmd = entry.get("cmd", "")
            if isinstance(cmd, list):
                cmd = " && ".join(str(c) for c in cmd)
            if not isinstance(cmd, str):
                raise BadDvcFile("cmd is not a string")
            deps = tuple(parse_out(d, base, "dependency") for d in entry.get("deps") or [])
            outs = tuple(parse_out(o, base, "output") for o in entry.get("outs") or [])
            params = entry.get("params") or {}
            if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
                raise BadDvcFile("params is not a mapping of files to values")
            files = {project_rel(base, str(k), "params file"): v for k, v in params.items()}
            out[str(name)] = DvcLockStage(str(name), cmd, deps, files, outs)
        except (BadDvcFile, TypeError, AttributeError) as exc:
            report.skip(f"dvc.lock stage {name}", f"{exc}: the stage will run once under Shipyard")
    return out


def parse_dir_listing(body: object, what: str) -> list[DirEntry]:
    """A ``.dir`` object: ``[{"md5": ..., "relpath": ..., "size": ..., "isexec": ...}, ...]``."""
    if not isinstance(body, list):
        raise BadDvcFile(f"{what} is not a list")
    out = []
    seen: set[str] = set()
    for item in body:
        if not isinstance(item, dict):
            raise BadDvcFile(f"{what} has an entry that is not a mapping")
        try:
            rel = safe_relpath(item.get("relpath"), f"{what} entry")
        except InvalidInputError as exc:
            raise BadDvcFile(str(exc)) from None
        md5 = item.get("md5")
        if not isinstance(md5, str) or not MD5.fullmatch(md5):
            raise BadDvcFile(f"{what} entry {rel}: md5 {_shown(md5)} is not an md5 hash")
        size = item.get("size")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise BadDvcFile(f"{what} entry {rel}: size {_shown(size)} is not a whole number")
        if rel in seen:
            raise BadDvcFile(f"{what} lists {rel} twice")
        seen.add(rel)
        out.append(DirEntry(rel, md5, size, item.get("isexec") is True))
    clash = file_and_folder([e.relpath for e in out])  # refused, as Shipyard's manifests refuse it
    if clash is not None:
        raise BadDvcFile(f"{what} lists {clash} as a file and as a folder")
    return out


@dataclass(frozen=True, slots=True)
class DvcConfig:
    remotes: dict[str, dict[str, str]]  # as the committed .dvc/config defines them
    default_remote: str | None
    cache_dir: str | None  # as written: relative to .dvc/, or absolute (config.local's wins: only read here)
    # what only .dvc/config.local (DVC's private, git-ignored file) sets: remote -> its options there; never
    # written into shipyard.yaml, which is committed
    private: dict[str, dict[str, str]] = field(default_factory=dict)
    private_default: str | None = None


PRIVATE_CONFIG = "config.local"


def parse_dvc_config(texts: list[tuple[str, str]], report: Report) -> DvcConfig:
    """``.dvc/config`` then ``.dvc/config.local`` (later values win for the cache), as DVC reads them (INI
    sections). What config.local sets is kept apart (``private``): DVC keeps that file out of git."""
    remotes: dict[str, dict[str, str]] = {}
    private: dict[str, dict[str, str]] = {}
    core: dict[str, str] = {}
    private_core: dict[str, str] = {}
    cache: dict[str, str] = {}
    for source, text in texts:
        local = source.endswith(PRIVATE_CONFIG)
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(text, source)
        except configparser.Error as exc:  # its text may hold a secret: only the line number is shown
            line = getattr(exc, "lineno", None) or next((n for n, _ in getattr(exc, "errors", ())), None)
            report.skip(source, f"not readable as DVC's configuration{f' (line {line})' if line else ''}: "
                                "its remotes are not carried over")
            continue
        for section in parser.sections():
            found = REMOTE_SECTION.match(section)
            if found:
                (private if local else remotes).setdefault(found.group(1), {}).update(parser[section])
            elif section.strip("' ") == "core":
                (private_core if local else core).update(parser[section])
            elif section.strip("' ") == "cache":
                cache.update(parser[section])
    default = core.get("remote")
    return DvcConfig(remotes, default if default in remotes else None, cache.get("dir"), private,
                     private_core.get("remote"))


def _without_userinfo(url: str) -> str:
    return USERINFO.sub(r"\1", url)


def convert_remote(name: str, options: dict[str, str], report: Report) -> dict[str, object] | None:
    """A Shipyard remote for a DVC one where the kind is supported (a folder, S3, an HTTP remote: read-only),
    else None (reported). A user name or password written into a URL is left out (reported: credentials are
    references in Shipyard); every URL a report line shows is masked."""
    url = options.get("url", "")
    secrets = sorted(k for k in options if k in CREDENTIALS)
    if has_userinfo(url) or has_userinfo(options.get("endpointurl", "")):
        secrets.append("a user name or password in a URL")
        url = _without_userinfo(url)
    if url.startswith("s3://"):
        spec: dict[str, object] = {"url": url}
        endpoint = _without_userinfo(options.get("endpointurl", ""))
        if endpoint:
            if not re.match(r"(?i)https?://[^/?#\s]", endpoint):
                report.skip(f"remote {name}", f"endpointurl {_shown(endpoint)} is not an http(s) URL")
                return None
            spec["endpoint_url"] = endpoint
            if endpoint.lower().startswith("http://"):
                spec["allow_http"] = True
        for key in ("region", "profile"):
            if options.get(key):
                spec[key] = options[key]
        if secrets:
            report.skip(f"remote {name} credentials", f"{', '.join(secrets)}: credentials not carried over "
                        "(Shipyard keeps references only, never values): add access_key_id: env:NAME and "
                        "secret_access_key: env:NAME (or vault:...) to the remote in shipyard.yaml")
        report.remotes[name] = f"S3 {url}"
        return spec
    if "://" not in url or url.startswith("file://"):
        path = url.removeprefix("file://")
        if not path:
            report.skip(f"remote {name}", "has no url")
            return None
        # DVC reads a relative folder from .dvc/ (where its config is); Shipyard from the project's top
        folder = path if posixpath.isabs(path) else posixpath.normpath(posixpath.join(".dvc", path))
        report.remotes[name] = f"folder {folder}"
        return {"url": folder}
    scheme = url.split("://", 1)[0].lower()[:20]
    if scheme in ("http", "https"):
        try:  # the host alone: never a user name, password, path or query (where a token may be)
            host = (urlsplit(url).hostname or "")[:100]
        except ValueError:
            host = ""
        if not host:
            report.skip(f"remote {name}", f"{scheme}:// URL without a host")
            return None
        parts = urlsplit(url)
        if parts.query or parts.fragment:  # a token may be there: never written into shipyard.yaml (committed)
            report.skip(f"remote {name} query", "the URL's query string or fragment (where a token may be) is left "
                                                "out of shipyard.yaml")
            url = parts._replace(query="", fragment="").geturl()
        auth = sorted(k for k in options if k in HTTP_AUTH and k not in secrets)
        if secrets or auth:
            report.skip(f"remote {name} credentials", f"{', '.join(secrets + auth)}: not carried over (Shipyard "
                        "keeps no credential values, and reads a DVC HTTP remote without authentication): the "
                        "remote works if the server serves it to anyone; otherwise `dvc pull` the data before "
                        "converting, or push it to a folder or S3 remote")
        report.remotes[name] = f"read-only HTTP remote {scheme}://{host}/... (DVC's layout: data is pulled from it, " \
                               "never pushed)"
        return {"url": url, "layout": "dvc"}
    report.skip(f"remote {name}", f"{scheme}:// remotes are not supported by Shipyard (folders and S3 are)")
    return None


def _private_remotes(config: DvcConfig, report: Report) -> None:
    """Report what only .dvc/config.local sets: never written into shipyard.yaml (committed), and Shipyard has
    no local-only remotes file, so the user decides what to declare."""
    for name, options in config.private.items():
        keys = sorted(k for k in options if k not in CREDENTIALS)
        secrets = sorted(k for k in options if k in CREDENTIALS)
        if name not in config.remotes:
            report.skip(f"remote {name}", "defined only in .dvc/config.local, DVC's private (git-ignored) "
                        "settings: not written to shipyard.yaml, which is committed; Shipyard has no local-only "
                        "remotes: declare it under remotes: in shipyard.yaml yourself if it may be shared "
                        "(credentials as env:NAME or vault:... references)")
        elif keys:
            report.skip(f"remote {name} local settings",
                        f"{', '.join(keys)} set in .dvc/config.local (DVC's private settings) are not carried over; "
                        "shipyard.yaml has the values of .dvc/config: edit the remote there if they should be "
                        "shared")
        if secrets and name in config.remotes:
            report.skip(f"remote {name} credentials", f"{', '.join(secrets)} set as values in .dvc/config.local: "
                        "credentials not carried over (Shipyard keeps references only): add access_key_id: "
                        "env:NAME and secret_access_key: env:NAME (or vault:...) to the remote in shipyard.yaml")
    if config.private_default and config.private_default != config.default_remote:
        report.skip("default remote", f"{config.private_default!r}, chosen in .dvc/config.local (DVC's private "
                    "settings), is not carried over: set default_remote: in shipyard.yaml if it should be shared")


def read_by_stages(stages: Mapping[str, StageDef], tracked: Iterable[str]) -> list[str]:
    """The ``tracked`` paths some stage reads: a dependency (relative to its stage's wdir) that is the path,
    holds it or lies inside it; sorted. Linear in paths and dependencies (each one's folders looked up)."""
    deps: set[str] = set()
    holders: set[str] = set()  # every folder above a dependency
    for spec in stages.values():
        wdir = posixpath.normpath(spec.wdir)
        for dep in spec.deps:
            try:
                path = declared_path(dep if wdir == "." else posixpath.join(wdir, dep), "dependency")
            except InvalidInputError:
                continue  # refused where the pipeline is built
            deps.add(path)
            while "/" in path:
                path = path.rpartition("/")[0]
                holders.add(path)

    def read(path: str) -> bool:
        if path in deps or path in holders:
            return True
        while "/" in path:
            path = path.rpartition("/")[0]
            if path in deps:
                return True
        return False

    return sorted(path for path in tracked if read(path))


def guess_flavor(path: str) -> str | None:
    ext = posixpath.splitext(path)[1].lower()
    return FLAVORS.get(ext)


def convert_yaml(dvc_yaml: object, config: DvcConfig, report: Report) -> dict[str, Any]:
    """The body of shipyard.yaml for a dvc.yaml (its stages and DVC sections as written), with ``models``
    from the ``type: model`` artifacts and the remotes that Shipyard supports."""
    if dvc_yaml is None:
        dvc_yaml = {}
    if not isinstance(dvc_yaml, dict):
        raise BadDvcFile("dvc.yaml is not a mapping")
    body: dict[str, Any] = {"version": 1}
    for key, value in dvc_yaml.items():
        if key in CARRIED_KEYS:
            body[key] = value
        elif key != "artifacts":
            report.skip(f"dvc.yaml {key}", f"{key}: has no Shipyard counterpart")
    models = _models(dvc_yaml.get("artifacts"), dvc_yaml, report)
    if models:
        body["models"] = models
    remotes = {}
    for name, options in config.remotes.items():
        spec = convert_remote(name, options, report)
        if spec is not None:
            remotes[name] = spec
    _private_remotes(config, report)
    if remotes:
        body["remotes"] = remotes
        if config.default_remote in remotes:
            body["default_remote"] = config.default_remote
    return body


def _models(artifacts: object, dvc_yaml: dict[str, Any], report: Report) -> dict[str, Any]:
    if artifacts is None:
        return {}
    if not isinstance(artifacts, dict):
        report.skip("dvc.yaml artifacts", "not a mapping")
        return {}
    out: dict[str, Any] = {}
    for name, spec in artifacts.items():
        what = f"artifact {name}"
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
            report.skip(what, "has no path")
            continue
        kind = spec.get("type")
        if kind != "model":
            report.skip(what, f"type {kind!r}: only type: model artifacts become Shipyard models (a dataset is "
                              "data: `shipyard data add` or a stage output tracks it)")
            continue
        flavor = guess_flavor(spec["path"])
        if flavor is None:
            report.skip(what, f"no flavor can be told from {spec['path']!r} (.pkl/.joblib: sklearn, .pt: torch, "
                              ".onnx: onnx): add it under models: with flavor: by hand")
            continue
        model: dict[str, Any] = {"path": spec["path"], "flavor": flavor}
        if isinstance(spec.get("desc"), str):
            model["desc"] = spec["desc"]
        labels = spec.get("labels")
        if isinstance(labels, list) and all(isinstance(label, str) for label in labels):
            model["labels"] = labels
        metrics_stage = _metrics_stage(dvc_yaml)
        if metrics_stage is not None:
            model["metrics"] = metrics_stage
        out[str(name)] = model
        stages = [s for s in (_producer(dvc_yaml, spec["path"]), metrics_stage) if s]
        report.model_stages[str(name)] = list(dict.fromkeys(stages))
        report.models[str(name)] = (f"{spec['path']} as {flavor} (guessed from the extension)"
                                    + (f", metrics from stage {metrics_stage}" if metrics_stage else ""))
    return out


def _out_paths(spec: dict[str, Any]) -> list[str]:
    paths = []
    for key in ("outs", "metrics", "plots"):
        for out in spec.get(key) or []:
            path = out if isinstance(out, str) else next(iter(out), "") if isinstance(out, dict) else ""
            if isinstance(path, str) and path:
                paths.append(path)
    return paths


def _producer(dvc_yaml: dict[str, Any], path: str) -> str | None:
    """The plainly written stage (no wdir, no foreach) whose output is ``path`` or holds it."""
    stages = dvc_yaml.get("stages")
    for name, spec in (stages.items() if isinstance(stages, dict) else ()):
        if isinstance(spec, dict) and "do" not in spec and "wdir" not in spec and any(
                path == p or path.startswith(p.rstrip("/") + "/") for p in _out_paths(spec)):
            return str(name)
    return None


def _metrics_stage(dvc_yaml: dict[str, Any]) -> str | None:
    """The one stage that writes the project's metrics (a top-level metrics file inside one of its outputs,
    or a stage ``metrics:`` entry), if exactly one does."""
    files = [m for m in dvc_yaml.get("metrics") or [] if isinstance(m, str)]
    found = set()
    stages = dvc_yaml.get("stages")
    for name, spec in (stages.items() if isinstance(stages, dict) else ()):
        if not isinstance(spec, dict):
            continue
        if spec.get("metrics"):
            found.add(str(name))
        for path in _out_paths(spec):
            if any(f == path or f.startswith(path.rstrip("/") + "/") for f in files):
                found.add(str(name))
    return found.pop() if len(found) == 1 else None
