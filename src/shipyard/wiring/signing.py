"""Signing and provenance, wired: ``shipyard sign``, signature status, the ``require_signed`` check every
loading path calls, and the SLSA provenance of pipeline-produced versions and built images.

A signature is a model-signing bundle over the version's files, stored as an object and named by a ``sign``
record. Signing reads no file: the store named each file by its SHA-256 when it was written, and the bundle
lists those digests. Verifying checks the bundle's signature with ``signing.trusted_keys``, that it lists
exactly the version's files, then re-hashes every stored file once: one SHA-256 pass over the model.
A version may carry several signatures (re-signed, or signed by several keys): it verifies when any of them
does, so recording a signature with an untrusted key never undoes a trusted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.core.governance.config import SigningSpec
    from shipyard.core.lineage.records import RunRecord
    from shipyard.core.registry.records import AuditEvent, ModelVersion
    from shipyard.wiring import Services

PIPELINE_BUILD_TYPE = "https://shipyard.dev/buildtypes/pipeline-stage/v1"
IMAGE_BUILD_TYPE = "https://shipyard.dev/buildtypes/image/v1"
PIPELINE_BUILDER = "https://shipyard.dev/builders/pipeline"
IMAGE_BUILDER = "https://shipyard.dev/builders/image"
STAGE_TAG = "shipyard.stage"  # the tag the pipeline runner puts on a stage's run


@dataclass(frozen=True)
class SignatureStatus:
    """What the policy input says of a version's signature."""

    signed: bool  # a signature is recorded for the version
    verified: bool  # it verifies against the version's files, by a trusted key
    key: str | None = None  # the signer's key fingerprint (sha256 of the public key), or its identity
    reason: str = ""  # one line: why not verified, or what verified it

    def to_dict(self) -> dict[str, object]:
        return {"signed": self.signed, "verified": self.verified, "key": self.key, "reason": self.reason}


def signing_spec(svc: Services) -> SigningSpec:
    from shipyard.core.governance.config import signing_config
    from shipyard.core.project.loader import load_config

    return signing_config(load_config(svc.settings.project_root).signing)


def project_path(svc: Services, path: str | Path) -> Path:
    """A path from shipyard.yaml or an option: relative ones are the project's."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else svc.settings.project_root / p


def generate_keys(out: Path) -> tuple[Path, Path, str]:
    """``shipyard keys generate``: OUT.key (0600) and OUT.pub, never overwritten; and the key's fingerprint."""
    from shipyard.adapters.signing.keys import generate

    return generate(out)


# --- sign ------------------------------------------------------------------------------------------------------

def sign_version(svc: Services, mv: ModelVersion, *, key: str | Path | None = None,
                 certificate: str | Path | None = None, chain: Sequence[str | Path] = (),
                 sigstore: bool = False) -> tuple[AuditEvent, dict[str, Any]]:
    """Sign ``mv``'s files (OpenSSF model-signing) with ``key`` (default ``signing.key``), a certificate, or
    keyless Sigstore; store the bundle and record a ``sign`` event. Returns the event and its record."""
    from shipyard.adapters.signing.bundle import sign_files
    from shipyard.core.artifacts.tree import load_manifest
    from shipyard.core.registry.records import SIGN_ACTION
    from shipyard.errors import InvalidInputError

    if chain and certificate is None:
        raise InvalidInputError("--chain goes with --certificate: name the signing certificate too")
    spec = signing_spec(svc)
    key = key if key is not None else spec.key
    certificate = certificate if certificate is not None else spec.certificate
    manifest = load_manifest(svc.store, mv.manifest_digest)
    bundle, method, who = sign_files(
        mv.ref, [(e.path, e.digest.hex) for e in manifest], sigstore=sigstore,
        key=None if key is None or sigstore else project_path(svc, key),
        certificate=None if certificate is None or sigstore else project_path(svc, certificate),
        chain=[project_path(svc, c) for c in chain])
    with svc.registry.writing():
        digest = svc.store.put_bytes(bundle)
        record = {"bundle": str(digest), "method": method, "key": who, "manifest": str(mv.manifest_digest)}
        event = svc.registry.record_result(mv, SIGN_ACTION, record, f"signed ({method}) by {who}")
    return event, record


def untrusted_note(svc: Services, key: str) -> str | None:
    """One line when ``signing.trusted_keys`` is configured and ``key`` (a fingerprint) is not among them: a
    signature by it does not count where ``signing.require_signed`` is on. None otherwise."""
    from shipyard.adapters.signing.keys import fingerprint, load_public
    from shipyard.errors import ConfigError

    spec = signing_spec(svc)
    if not spec.trusted_keys or not key.startswith("sha256:"):
        return None
    trusted = set()
    for path in spec.trusted_keys:
        try:
            trusted.add(fingerprint(load_public(project_path(svc, path))))
        except ConfigError:
            continue
    if key in trusted:
        return None
    return (f"warning: {key} is not in signing.trusted_keys: this signature will not count where "
            "signing.require_signed is on (add its public key there if you trust it)")


# --- verify ----------------------------------------------------------------------------------------------------

def _sign_events(svc: Services, mv: ModelVersion) -> list[AuditEvent]:
    from shipyard.core.registry.records import SIGN_ACTION

    return [e for e in svc.registry.meta.audit_events(mv.model)
            if e.action == SIGN_ACTION and e.name == str(mv.version) and e.new]


def verify_signature(svc: Services, mv: ModelVersion, trusted: Sequence[Path] | None = None,
                     rehash: bool = True) -> tuple[str, int]:
    """Check ``mv``'s signatures: the version verifies when any recorded signature's bundle verifies with a
    trusted key and lists exactly the version's files (checked per signature, newest first: no file is read),
    and then each stored file still hashes to its digest (one SHA-256 pass over the model, whatever the number
    of signatures). Returns (the verifying key's fingerprint, the number of files); a one-line SignatureError
    says why not, naming the newest signature's failure when none verifies. ``rehash=False``: the bundles only
    (what the records and signatures say, not that the stored bytes still match: cheap, for display)."""
    from shipyard.core.artifacts.tree import load_manifest, verified_chunks
    from shipyard.errors import IntegrityError, NotFoundError, SignatureError

    events = _sign_events(svc, mv)
    if not events:
        raise SignatureError("it is not signed (sign it with `shipyard sign " + mv.ref + "`)")
    if trusted is None:
        spec = signing_spec(svc)
        trusted = [project_path(svc, k) for k in spec.trusted_keys]
    if not trusted:
        raise SignatureError("no key is trusted: list public keys under signing.trusted_keys in shipyard.yaml")
    manifest = load_manifest(svc.store, mv.manifest_digest)
    files = {e.path: e.digest.hex for e in manifest}
    key: str | None = None
    newest: SignatureError | None = None
    for event in reversed(events):
        try:
            key = _check_bundle(svc, event, trusted, files)
            break
        except SignatureError as exc:
            newest = newest or exc
    if key is None:
        assert newest is not None
        if len(events) > 1:
            raise SignatureError(f"none of its {len(events)} signatures verifies; the newest: {newest}") from newest
        raise newest
    if not rehash:
        return key, len(files)
    svc.store.fetch([e.digest for e in manifest], sizes={e.digest: e.size for e in manifest})
    for entry in manifest:
        try:
            for _ in verified_chunks(svc.store, entry.digest):
                pass
        except IntegrityError as exc:
            raise SignatureError(f"{entry.path} no longer matches its signed digest (its bytes changed in the "
                                 "store)") from exc
        except NotFoundError as exc:
            raise SignatureError(f"{entry.path} is missing from the store") from exc
    return key, len(files)


def _check_bundle(svc: Services, event: AuditEvent, trusted: Sequence[Path], files: dict[str, str]) -> str:
    """One sign record's bundle: its signature verifies with a trusted key and it lists exactly ``files``
    (path -> sha256 hex). Returns the key's fingerprint; reads no model file."""
    import json

    from shipyard.adapters.signing.bundle import MAX_BUNDLE_BYTES, verify_bundle
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.artifacts.tree import read_verified
    from shipyard.errors import IntegrityError, InvalidInputError, NotFoundError, SignatureError

    try:
        record = json.loads(read_verified(svc.store, Digest.parse(str(event.new)), limit=1024 * 1024))
        bundle_digest = Digest.parse(str(record["bundle"]))
    except (IntegrityError, NotFoundError, InvalidInputError, ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"its signature record is damaged or missing in the store ({exc})") from exc
    try:
        bundle = read_verified(svc.store, bundle_digest, limit=MAX_BUNDLE_BYTES)
    except (IntegrityError, NotFoundError) as exc:
        raise SignatureError("its signature bundle was altered or removed in the store (it no longer hashes to "
                             "the digest the sign record names)") from exc
    from shipyard.core.deploy.promotion import one_line

    claimed = record.get("key")  # a record's claim, shown in messages: one printable line, bounded
    signed = verify_bundle(bundle, trusted, one_line(claimed, 100) if isinstance(claimed, str) else None)
    if signed.files != files:
        differ = sorted(set(files) ^ set(signed.files) | {p for p in files if signed.files.get(p) not in
                                                            (None, files[p])})
        raise SignatureError(f"the signature is not of this version's files ({len(differ)} differ, e.g. "
                             f"{differ[0] if differ else '?'}; it was made for other bytes)")
    return signed.key


def signature_status(svc: Services, mv: ModelVersion) -> SignatureStatus:
    """Whether ``mv`` is signed, and whether that signature verifies now with the trusted keys."""
    from shipyard.errors import ConfigError, SignatureError

    if not _sign_events(svc, mv):
        return SignatureStatus(False, False, None, f"it is not signed (sign it with `shipyard sign {mv.ref}`)")
    try:
        key, count = verify_signature(svc, mv)
    except (SignatureError, ConfigError) as exc:
        return SignatureStatus(True, False, _recorded_key(svc, mv), str(exc))
    return SignatureStatus(True, True, key, f"verified: {count} files signed by {key}")


def signature_summary(svc: Services, mv: ModelVersion) -> SignatureStatus:
    """Like ``signature_status`` without re-hashing the files: whether a recorded signature's bundle verifies
    with a trusted key and lists the version's files (for ``models show``; ``sign --verify`` re-hashes)."""
    from shipyard.errors import ShipyardError

    if not _sign_events(svc, mv):
        return SignatureStatus(False, False, None, "not signed")
    try:
        key, count = verify_signature(svc, mv, rehash=False)
    except ShipyardError as exc:  # SignatureError, ConfigError, MissingExtraError: said, never raised
        return SignatureStatus(True, False, _recorded_key(svc, mv), str(exc))
    return SignatureStatus(True, True, key, f"the signature of its {count} files verifies with a trusted key "
                                           "(files not re-hashed: `shipyard sign --verify` does)")


def _recorded_key(svc: Services, mv: ModelVersion) -> str | None:
    from shipyard.core.registry.records import SIGN_ACTION

    records = svc.registry.results(mv, SIGN_ACTION)
    from shipyard.core.deploy.promotion import one_line

    key = records[-1][1].get("key") if records else None
    return one_line(key, 100) if isinstance(key, str) else None


_VERBS = {"load": "loaded", "serve": "served", "promote": "promoted", "deploy": "deployed"}


def require_signature(svc: Services, mv: ModelVersion | None, action: str, what: str = "") -> SignatureStatus | None:
    """With ``signing.require_signed``: raise SignatureError unless ``mv`` verifies (``action``: load, serve,
    promote, deploy, for the message), else return the status it found (a policy decision then reuses it instead
    of hashing the files again). Without it: nothing checked, None. ``mv`` None: ``what`` is no version (a run's
    files), which nothing signs."""
    from shipyard.errors import SignatureError

    if not signing_spec(svc).require_signed:
        return None
    if mv is None:
        raise SignatureError(f"{what} is not a registered version, and only versions are signed (signing."
                             "require_signed is on): register it, sign it, then load it by NAME@VERSION")
    status = signature_status(svc, mv)
    if not status.verified:
        verb = _VERBS.get(action, action)
        raise SignatureError(f"{mv.ref} is not {verb}: {status.reason} (signing.require_signed is on)")
    return status


# --- provenance ------------------------------------------------------------------------------------------------

def record_version_provenance(svc: Services, mv: ModelVersion, run: RunRecord) -> tuple[AuditEvent, dict[str, Any]]:
    """The SLSA v1 provenance of a version a pipeline stage produced: the stage and its params, the data and
    code it read (digests, commit), the run that made it; signed when ``signing.key`` is set."""
    from shipyard._version import __version__

    deps: list[dict[str, Any]] = [{"name": path, "digest": {"sha256": d.hex}}
                                  for path, d in sorted(run.inputs.items())]
    code = run.code
    if code.commit:
        deps.append({"uri": f"git+{code.repo}@{code.commit}" if code.repo else f"git+{code.commit}",
                     "name": "code", "digest": {"gitCommit": code.commit}})
    if code.diff_digest is not None:
        deps.append({"name": "uncommitted diff", "digest": {"sha256": code.diff_digest.hex}})
    external = {"stage": run.tags.get(STAGE_TAG, run.name), "cmd": run.tags.get("shipyard.cmd", ""),
                "params": dict(run.params)}
    internal = {"fingerprint": run.tags.get("shipyard.fingerprint", ""),
                "environment": str(run.env_digest) if run.env_digest else "", "shipyard": __version__}
    subject = [{"name": mv.ref, "digest": {"sha256": mv.manifest_digest.hex}}]
    return _record_provenance(svc, mv, subject, PIPELINE_BUILD_TYPE, external, internal, deps,
                              PIPELINE_BUILDER, run.id, run.start_time, run.end_time, None)


def record_image_provenance(svc: Services, mv: ModelVersion,
                            built: dict[str, Any]) -> tuple[AuditEvent, dict[str, Any]]:
    """The SLSA v1 provenance of an image built for ``mv`` (``built``: the build's ``to_dict()``, with its
    ``tag`` and ``image_id``): the model's files and the base image it was built from."""
    from shipyard._version import __version__

    image_id = str(built["image_id"])
    subject = [{"name": str(built["tag"]), "digest": {"sha256": image_id.removeprefix("sha256:")}}]
    deps: list[dict[str, Any]] = [{"name": mv.ref, "digest": {"sha256": mv.manifest_digest.hex}}]
    if built.get("base"):
        deps.append({"name": "base image", "uri": f"docker://{built['base']}"})
    external = {"model": mv.ref, "tag": str(built["tag"]), "base": str(built.get("base") or "")}
    internal = {"engine": str(built.get("engine") or ""), "shipyard": __version__}
    return _record_provenance(svc, mv, subject, IMAGE_BUILD_TYPE, external, internal, deps,
                              f"{IMAGE_BUILDER}/{built.get('engine') or 'none'}", f"build {built['tag']}",
                              None, None, str(built["tag"]))


def _record_provenance(svc: Services, mv: ModelVersion, subject: list[dict[str, Any]], build_type: str,
                       external: dict[str, Any], internal: dict[str, Any], deps: list[dict[str, Any]],
                       builder: str, invocation: str, started: float | None, finished: float | None,
                       image: str | None) -> tuple[AuditEvent, dict[str, Any]]:
    from shipyard.adapters.signing import provenance
    from shipyard.core.registry.records import PROVENANCE_ACTION

    statement = provenance.statement(subject, build_type, external, internal, deps, builder, invocation,
                                     started, finished)
    key = signing_spec(svc).key
    with svc.registry.writing():
        digest = svc.store.put_bytes(statement)
        envelope, by = None, None
        if key is not None:
            signed, by = provenance.sign_statement(statement, project_path(svc, key))
            envelope = str(svc.store.put_bytes(signed))
        record = {"statement": str(digest), "envelope": envelope, "subject": image or mv.ref, "image": image}
        what = f"image {image}" if image else mv.ref
        event = svc.registry.record_result(mv, PROVENANCE_ACTION, record,
                                           f"SLSA provenance of {what}" + (f", signed by {by}" if by else
                                                                           ", unsigned"))
    return event, record


def after_log_model(svc: Services, mv: ModelVersion, run: RunRecord) -> None:
    """``log_model`` inside a pipeline stage: the new version gets its provenance."""
    if STAGE_TAG in run.tags:
        record_version_provenance(svc, mv, run)
