"""OpenSSF model-signing bundles over a version's files, made and checked with the ``model-signing`` package.

A bundle is a Sigstore bundle whose DSSE envelope signs an in-toto statement (predicate
``https://model_signing/signature/v1.0``) listing every file of the model with its SHA-256. Shipyard's store
already names each file by its SHA-256, so the statement is built from the version's manifest (no file is
read to sign); checking a bundle here is the signature alone and gives back the signed files, which the
caller compares with the bytes in the store. ``model_signing``'s own ``verify`` accepts the same bundle
over a copy of the files (tests/test_signing.py checks that).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.adapters.signing import need
from shipyard.adapters.signing.keys import fingerprint, load_certificate, load_private, load_public
from shipyard.errors import ConfigError, SignatureError

KEY, CERTIFICATE, SIGSTORE = "key", "certificate", "sigstore"
MAX_BUNDLE_BYTES = 256 * 1024 * 1024  # a bundle lists every file (~150 bytes each): millions of files at most


@dataclass(frozen=True)
class Signed:
    """What a bundle says, once its signature checked out."""

    key: str  # the fingerprint of the key that verified it (or the Sigstore identity)
    name: str  # the model name the statement gives (informative)
    files: dict[str, str]  # path -> sha256 hex


def sign_files(name: str, files: Iterable[tuple[str, str]], *, key: Path | None = None,
               certificate: Path | None = None, chain: Sequence[Path] = (), sigstore: bool = False,
               identity_token: str | None = None) -> tuple[bytes, str, str]:
    """A model-signing bundle over ``files`` ((path, sha256 hex) pairs) for the model ``name``: with the EC
    ``key``, the ``key`` + ``certificate`` (+ ``chain``), or keyless Sigstore (ambient OIDC credentials, as in
    CI). Returns (bundle JSON, method, the key's fingerprint or the signer's identity)."""
    need("model_signing", "signing a model")
    from model_signing._signing import signing as ms_signing

    payload = ms_signing.Payload(_manifest(name, files))
    try:
        if sigstore:
            from model_signing._signing import sign_sigstore
            from sigstore.oidc import detect_credential

            token = identity_token or detect_credential("sigstore")  # CI's ambient OIDC token; never a browser
            if not token:
                raise ConfigError("no ambient OIDC credential for keyless Sigstore signing: run it in CI (GitHub "
                                  "Actions with `permissions: id-token: write`, GitLab with an id_token named "
                                  "SIGSTORE_ID_TOKEN), or sign with --key")
            signer: Any = sign_sigstore.Signer(use_ambient_credentials=False, identity_token=token)
            bundle = signer.sign(payload).bundle.to_json()
            return bundle.encode(), SIGSTORE, _sigstore_identity(bundle)
        if key is None:
            raise ConfigError("no signing key: pass --key PATH, set signing.key in shipyard.yaml, or use --sigstore "
                              "(make a key pair with `shipyard keys generate`)")
        private = load_private(key)  # a one-line error for a file that is not an EC key
        if certificate is not None:
            from model_signing._signing import sign_certificate

            leaf = load_certificate(certificate)
            for link in chain:
                load_certificate(link, "certificate (of --chain)")
            if fingerprint(leaf.public_key()) != fingerprint(private.public_key()):
                raise ConfigError(f"{certificate} certifies another key than {key}: give the certificate of that "
                                  "key (or the key of that certificate)")

            signer = sign_certificate.Signer(key, certificate, list(chain))
            method = CERTIFICATE
        else:
            from model_signing._signing import sign_ec_key

            signer = sign_ec_key.Signer(key)
            method = KEY
        return signer.sign(payload).bundle.to_json().encode(), method, fingerprint(private.public_key())
    except (ConfigError, SignatureError):
        raise
    except Exception as exc:  # model-signing and sigstore raise ValueError, OSError, their own errors
        raise SignatureError(f"signing failed: {_line(exc)}") from exc


def verify_bundle(data: bytes, trusted: Sequence[Path], claimed: str | None = None) -> Signed:
    """The files a bundle signs, if its signature verifies with one of the ``trusted`` public keys (PEM keys or
    certificates); a one-line SignatureError otherwise (not a bundle, altered, or signed by another key, which
    ``claimed`` names)."""
    need("model_signing", "verifying a model's signature")
    from model_signing._signing import sign_ec_key
    from model_signing._signing import sign_sigstore_pb as pb
    from sigstore_models.bundle import v1 as bundle_pb

    if len(data) > MAX_BUNDLE_BYTES:
        raise SignatureError("the signature bundle is larger than any Shipyard writes: it was not written by "
                             "`shipyard sign`")
    try:
        body = json.loads(data)
        material = body["verificationMaterial"]
        if "publicKey" not in material and "certificate" not in material and "x509CertificateChain" not in material:
            raise SignatureError("the version is signed with keyless Sigstore; verify it in CI with "
                                 "`model_signing verify sigstore --identity ... --identity_provider ...`")
        material.setdefault("tlogEntries", [])
        if "publicKey" in material:
            material["publicKey"].setdefault("hint", None)
        signature = pb.Signature(bundle_pb.Bundle.from_dict(body))
    except SignatureError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise SignatureError(f"the signature is not a model-signing bundle ({_line(exc)})") from exc
    certificate = _leaf_key(signature)
    keys = [(path, load_public(path)) for path in trusted]
    signer_key = certificate
    if certificate is None:
        identifier = signature.bundle.verification_material.public_key
        hint = identifier.hint if identifier is not None else None
        signer_key = next((k for _, k in keys if _pem_hint(k) == hint), None)
    if signer_key is None:  # ``claimed``: the fingerprint the sign record gives, to name the key
        by = f"by {claimed}, " if claimed else "by "
        raise SignatureError(f"it is signed {by}a key not in signing.trusted_keys (add its public key there if "
                             "you trust it)")
    print_key = fingerprint(signer_key)
    if print_key not in {fingerprint(k) for _, k in keys}:
        raise SignatureError(f"it is signed by {print_key}, a key not in signing.trusted_keys (add its public key "
                             "there if you trust it)")
    try:
        if certificate is None:
            path = next(p for p, k in keys if fingerprint(k) == print_key)
            manifest = sign_ec_key.Verifier(path).verify(signature)
        else:
            manifest = _CertificateKeyVerifier(certificate).verify(signature)
    except Exception as exc:  # cryptography's InvalidSignature, model-signing's ValueError
        raise SignatureError(f"its signature does not verify with {print_key}: the bundle was altered "
                             f"({_line(exc) or type(exc).__name__})") from exc
    files = {rd.identifier: rd.digest.digest_hex for rd in manifest.resource_descriptors()
             if rd.digest.algorithm == "sha256"}
    return Signed(print_key, manifest.model_name, files)


def _manifest(name: str, files: Iterable[tuple[str, str]]) -> Any:
    from model_signing import manifest as ms
    from model_signing._hashing import hashing

    items = [ms.FileManifestItem(path=PurePosixPath(path), digest=hashing.Digest("sha256", bytes.fromhex(hexdigest)))
             for path, hexdigest in files]
    return ms.Manifest(name, items, ms._FileSerialization("sha256", False))


def _pem_hint(public_key: Any) -> str:
    """model-signing's key hint: the SHA-256 of the PEM public key."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def _leaf_key(signature: Any) -> Any:
    """The public key of a certificate-signed bundle's signing certificate; None for a key-signed one."""
    from cryptography import x509

    material = signature.bundle.verification_material
    chain = getattr(material, "x509_certificate_chain", None)
    certs = list(getattr(chain, "certificates", None) or [])
    raw = certs[0].raw_bytes if certs else getattr(getattr(material, "certificate", None), "raw_bytes", None)
    if not raw:
        return None
    try:
        return x509.load_der_x509_certificate(raw).public_key()
    except ValueError as exc:
        raise SignatureError(f"the signature's certificate is damaged ({_line(exc)})") from exc


class _CertificateKeyVerifier:
    """A certificate-signed bundle checked by its certificate's key (which must be a trusted key): the DSSE
    signature over the statement, then model-signing's own reading of the statement."""

    def __init__(self, public_key: Any) -> None:
        self.public_key = public_key

    def verify(self, signature: Any) -> Any:
        from cryptography.hazmat.primitives.asymmetric import ec
        from model_signing._signing import sign_ec_key
        from model_signing._signing import sign_sigstore_pb as pb
        from model_signing._signing import signing as ms_signing

        envelope = signature.bundle.dsse_envelope
        self.public_key.verify(envelope.signatures[0].sig, pb.pae(envelope.payload),
                               ec.ECDSA(sign_ec_key.get_ec_key_hash(self.public_key)))
        if envelope.payload_type != ms_signing._IN_TOTO_JSON_PAYLOAD_TYPE:
            raise ValueError(f"unexpected payload type {envelope.payload_type}")
        return ms_signing.dsse_payload_to_manifest(json.loads(envelope.payload))


def _sigstore_identity(bundle: str) -> str:
    """The signer's identity (the certificate's SAN) of a keyless Sigstore bundle."""
    import base64

    from cryptography import x509

    try:
        material = json.loads(bundle)["verificationMaterial"]
        raw = (material.get("certificate") or material["x509CertificateChain"]["certificates"][0])["rawBytes"]
        cert = x509.load_der_x509_certificate(base64.b64decode(raw))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
        names += [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
        return names[0] if names else "sigstore"
    except (ValueError, KeyError, TypeError, IndexError, x509.ExtensionNotFound):
        return "sigstore"


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""
