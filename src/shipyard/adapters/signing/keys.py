"""EC key pairs in PEM: made by ``shipyard keys generate``, read (bounded) wherever a key is configured."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import ConfigError, InvalidInputError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey

MAX_PEM_BYTES = 64 * 1024  # a key or a certificate chain is a few KiB; more is not a key
PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"


def read_pem(path: Path, what: str) -> bytes:
    """The bytes of the PEM file ``path`` (at most ``MAX_PEM_BYTES``); a one-line ConfigError otherwise. Opened
    without blocking and read only when it is a regular file: a FIFO or a device is refused, never waited on."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ConfigError(f"{path} is not a regular file: give the path of the {what}'s PEM file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(data) > MAX_PEM_BYTES or b"-----BEGIN" not in data:
        raise ConfigError(f"{path} is not a PEM {what} (make a key pair with `shipyard keys generate`)")
    return data


def fingerprint(public_key: Any) -> str:
    """``sha256:<hex>`` of the public key's DER (SubjectPublicKeyInfo): how records name a key."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def load_private(path: Path) -> EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    try:
        key = serialization.load_pem_private_key(read_pem(path, "private key"), None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key ({str(exc).splitlines()[0][:120]}); "
                          "make one with `shipyard keys generate`") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in _CURVES:
        raise ConfigError(f"{path} is not an EC key on P-256, P-384 or P-521 (what model-signing signs with); "
                          "make one with `shipyard keys generate`")
    return key


def load_public(path: Path) -> EllipticCurvePublicKey:
    """A trusted key: a PEM public key, or the public key of a PEM certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    data = read_pem(path, "public key")
    try:
        key: Any = (x509.load_pem_x509_certificate(data).public_key() if b"CERTIFICATE-----" in data
                    else serialization.load_pem_public_key(data))
    except ValueError as exc:
        raise ConfigError(f"{path} is not a PEM public key or certificate ({str(exc).splitlines()[0][:120]})") \
            from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name not in _CURVES:
        raise ConfigError(f"{path} is not an EC public key on P-256, P-384 or P-521")
    return key


_CURVES = ("secp256r1", "secp384r1", "secp521r1")


def load_certificate(path: Path, what: str = "certificate") -> Any:
    """An X.509 certificate in PEM (``--certificate``, ``--chain``); a one-line ConfigError naming the file and
    what is expected otherwise (a public key, a private key or garbage)."""
    from cryptography import x509

    expected = f"{path} is not a PEM {what}: --certificate and --chain take X.509 certificates " \
               "(-----BEGIN CERTIFICATE-----)"
    data = read_pem(path, what)  # a regular file, read without blocking and bounded (never a FIFO or a device)
    if b"-----BEGIN CERTIFICATE-----" not in data:
        found = next((kind for kind in ("PUBLIC KEY", "PRIVATE KEY") if f"-----BEGIN {kind}".encode() in data
                      or f"-----BEGIN EC {kind}".encode() in data), None)
        raise ConfigError(expected + (f", and it holds a {found.lower()}" if found else ""))
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise ConfigError(f"{expected} ({str(exc).splitlines()[0][:120] if str(exc) else 'unreadable'})") from exc


def generate(out: Path) -> tuple[Path, Path, str]:
    """Write a new P-256 key pair: ``OUT.key`` (PKCS#8 PEM, mode 0600) and ``OUT.pub``; never overwrites.
    Returns both paths and the key's fingerprint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private_path, public_path = Path(f"{out}{PRIVATE_SUFFIX}"), Path(f"{out}{PUBLIC_SUFFIX}")
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise InvalidInputError(f"{path} exists already: keys are never overwritten; choose another --out")
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        private_path.parent.mkdir(parents=True, exist_ok=True)
        _write_new(private_path, private, 0o600)
        try:
            _write_new(public_path, public, 0o644)
        except BaseException:
            private_path.unlink()
            raise
    except FileExistsError as exc:
        raise InvalidInputError(f"{exc.filename} exists already: keys are never overwritten; choose another --out") \
            from exc
    except OSError as exc:
        raise InvalidInputError(f"cannot write the key pair at {out}: {exc.strerror or exc}") from exc
    return private_path, public_path, fingerprint(key.public_key())


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
