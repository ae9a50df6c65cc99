"""S3-compatible remotes through obstore (Rust ``object_store``: fast, concurrent, no boto3)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

import obstore
import obstore.exceptions
from obstore.store import S3Store

from shipyard.adapters.remotes import redact
from shipyard.core.artifacts.digest import OBJECTS, Digest, object_key
from shipyard.core.artifacts.tree import verified_chunks
from shipyard.core.project.model import Remote as RemoteSpec
from shipyard.core.workspace.atomic import MAX_REF_BYTES, ref_too_large
from shipyard.core.workspace.paths import safe_relpath
from shipyard.errors import BackendUnavailableError, ConfigError, IntegrityError, NotFoundError, ShipyardError
from shipyard.ports import ObjectStore, Progress, no_progress

CONCURRENCY = 32
SMALL = 8 * 1024 * 1024  # up to this, an object is sent in one conditional PUT; above, as a streamed multipart upload
PART = 5 * 1024 * 1024  # chunks of a multipart upload as read: obstore's part size, so no part is assembled twice
# An unreachable endpoint fails in seconds, not after minutes of retries: each connection attempt gives up after
# CONNECT, retries stop RETRY_FOR after the first attempt. A transfer may take as long as its size needs (the
# client's default caps a whole request, body included, at 30 s); a stalled one fails once nothing arrives
# for STALLED.
CONNECT = timedelta(seconds=2)
STALLED = timedelta(seconds=10)
RETRY_FOR = timedelta(seconds=5)
CLIENT: dict[str, Any] = {"connect_timeout": CONNECT, "read_timeout": STALLED, "timeout": timedelta(days=1)}
RETRY: dict[str, Any] = {"max_retries": 3, "retry_timeout": RETRY_FOR,
                         "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=1),
                                     "base": 2}}
REFUSED_CONDITION = ("NotImplemented", "not implemented", " 501 ")  # a service without If-None-Match on PUT
T = TypeVar("T")


HOW_TO_AUTHENTICATE = ("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
                       "keys), or put keys in ~/.aws/credentials under [default] (`aws configure`) or another "
                       "profile, named with AWS_PROFILE or `profile:` under the remote in shipyard.yaml")
WEB_IDENTITY = ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI")  # EKS/ECS roles: obstore reads these itself
EC2_MARKS = (("/sys/class/dmi/id/sys_vendor", "Amazon EC2"), ("/sys/class/dmi/id/board_vendor", "Amazon EC2"),
             ("/sys/hypervisor/uuid", "ec2"))  # where an instance role (the metadata endpoint) can answer


def credentials(spec: RemoteSpec, environ: Mapping[str, str]) -> dict[str, str]:
    """The credential options for ``spec``, found without any network call; ConfigError if there are none.

    In order: keys in the environment (obstore reads them), the profile of ``spec.profile`` or
    ``AWS_PROFILE`` read from the shared credentials file, an EKS/ECS role, and last, on an EC2 machine,
    the instance role. Anywhere else the client would probe the instance metadata endpoint
    (169.254.169.254): a raw 403 behind a proxy, or a slow timeout on a laptop. That is refused up front
    in one line saying how to provide credentials.
    """
    if environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
        return {}
    profile = spec.profile or environ.get("AWS_PROFILE")
    if profile:
        return _profile_keys(redact(spec.url), profile, environ)
    if _has_default_profile(environ):  # what `aws configure` writes, and every AWS SDK reads unasked
        return _profile_keys(redact(spec.url), "default", environ)
    if spec.endpoint_url is None and (any(environ.get(k) for k in WEB_IDENTITY) or _on_ec2()):
        return {}
    where = f" at {redact(spec.endpoint_url)}" if spec.endpoint_url else ""
    raise ConfigError(f"remote {redact(spec.url)}{where}: no AWS credentials found: {HOW_TO_AUTHENTICATE}")


def _has_default_profile(environ: Mapping[str, str]) -> bool:
    """Whether the shared credentials file holds a ``[default]`` profile with keys (if unreadable: no)."""
    import configparser

    parser = configparser.RawConfigParser()
    try:
        with open(_credentials_file(environ), encoding="utf-8") as f:
            parser.read_file(f)
    except (OSError, UnicodeDecodeError, configparser.Error):
        return False
    return parser.has_section("default") and bool(parser["default"].get("aws_access_key_id"))


def _credentials_file(environ: Mapping[str, str]) -> str:
    return environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")


def _profile_keys(url: str, profile: str, environ: Mapping[str, str]) -> dict[str, str]:
    import configparser

    path = _credentials_file(environ)
    parser = configparser.RawConfigParser()
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except FileNotFoundError:
        raise ConfigError(f"remote {url}: AWS profile {profile!r} is named, but {path} does not exist: "
                          f"{HOW_TO_AUTHENTICATE}") from None
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise ConfigError(f"remote {url}: cannot read {path}: {' '.join(str(exc).split())[:200]}") from None
    if not parser.has_section(profile):
        raise ConfigError(f"remote {url}: AWS profile {profile!r} is not in {path} (SSO and role profiles of "
                          f"~/.aws/config are not read: `aws configure export-credentials --profile {profile} "
                          "--format env` gives keys to set)")
    section = parser[profile]
    key, secret = section.get("aws_access_key_id"), section.get("aws_secret_access_key")
    if not key or not secret:
        raise ConfigError(f"remote {url}: AWS profile {profile!r} in {path} has no aws_access_key_id and "
                          "aws_secret_access_key")
    found = {"access_key_id": key.strip(), "secret_access_key": secret.strip()}
    token = section.get("aws_session_token")
    if token:
        found["session_token"] = token.strip()
    return found


def _on_ec2() -> bool:
    for path, mark in EC2_MARKS:
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                if f.read(64).strip().lower().startswith(mark.lower()):
                    return True
        except OSError:
            continue
    return False


CREDENTIAL_SIGNS = ("169.254.169.254", "credential", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                    "ExpiredToken")


@contextlib.contextmanager
def _translated(what: str, url: str, endpoint: str | None = None) -> Iterator[None]:
    try:
        yield
    except ShipyardError:
        raise
    except (OSError, RuntimeError, ValueError, obstore.exceptions.BaseError) as exc:
        if (missing := _no_bucket(exc, url, endpoint)) is not None:
            raise missing from exc
        if isinstance(exc, FileNotFoundError):
            raise
        text = redact(str(exc))
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        if any(sign.lower() in text.lower() for sign in CREDENTIAL_SIGNS):
            raise ConfigError(f"{what} on remote {url} failed: the credentials were missing or refused "
                              f"({first[:120]}): {HOW_TO_AUTHENTICATE}") from exc
        raise BackendUnavailableError(f"{what} on remote {url} failed: {first[:300]}") from exc


def _no_bucket(exc: BaseException, url: str, endpoint: str | None) -> ConfigError | None:
    """The service's answer that the bucket itself does not exist, as one line (not an XML fragment)."""
    if "<Code>NoSuchBucket</Code>" not in str(exc):
        return None
    bucket = url.removeprefix("s3://").partition("/")[0]
    return ConfigError(f"bucket {bucket} does not exist at {redact(endpoint or 'AWS S3')}: create it or fix the "
                       "store URL (or the remote's url in shipyard.yaml)")


def _oversized(digest: Digest, url: str, got: int, most: int) -> IntegrityError:
    return IntegrityError(f"object {digest} on remote {url} has {got} bytes or more where at most {most} are "
                          "expected: it is damaged or hostile, nothing was stored; push it again from a good copy")


def referenced_keys(spec: RemoteSpec, secret: Callable[[str, str], str] | None) -> dict[str, str] | None:
    """The keys ``spec`` names by reference (``access_key_id: vault:...``), resolved now; None when it names
    none (the environment, a profile or a role provide them)."""
    if spec.access_key_id is None or spec.secret_access_key is None:
        return None
    if secret is None:
        raise ConfigError(f"remote {redact(spec.url)} names its keys by reference, and no resolver was given")
    keys = {"access_key_id": secret(spec.access_key_id, "the remote's access_key_id"),
            "secret_access_key": secret(spec.secret_access_key, "the remote's secret_access_key")}
    if spec.session_token is not None:
        keys["session_token"] = secret(spec.session_token, "the remote's session_token")
    return keys


class S3Remote:
    def __init__(self, spec: RemoteSpec, secret: Callable[[str, str], str] | None = None) -> None:
        """``secret`` resolves the credential references of ``spec`` (``wiring.secrets``)."""
        bucket, _, prefix = spec.url.removeprefix("s3://").partition("/")
        self.url = redact(spec.url)  # for messages: a user name or password in it is never printed
        self._endpoint = spec.endpoint_url
        options: dict[str, Any] = {}
        if spec.endpoint_url:
            options["endpoint"] = spec.endpoint_url
            options["virtual_hosted_style_request"] = False
        if spec.region:
            options["region"] = spec.region
        keys = referenced_keys(spec, secret)
        options.update(keys if keys is not None else credentials(spec, os.environ))
        client: Any = dict(CLIENT)
        if spec.allow_http or (spec.endpoint_url or "").startswith("http://"):
            client["allow_http"] = True
        self._conditional = True  # the service honours If-None-Match (a "create" put); False once it refused it
        with _translated("connecting", self.url, self._endpoint):
            self._store = S3Store(bucket, prefix=prefix.strip("/") or None, client_options=client,
                                  retry_config=dict(RETRY), **options)  # type: ignore[arg-type]

    @staticmethod
    def _key(d: Digest) -> str:
        return object_key(d)

    def _parallel(self, fn: Callable[[Digest], T], digests: Sequence[Digest]) -> list[T]:
        with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            return list(pool.map(fn, digests))

    def missing(self, digests: Sequence[Digest]) -> list[Digest]:
        present = self.sizes(digests)
        return [d for d in digests if d not in present]

    def sizes(self, digests: Sequence[Digest]) -> dict[Digest, int]:
        return {d: size for d, (size, _) in self.stats(digests).items()}

    def stats(self, digests: Sequence[Digest]) -> dict[Digest, tuple[int, float]]:
        if not digests:
            return {}
        with _translated("listing objects", self.url, self._endpoint):
            if len(digests) > 200:  # one listing beats thousands of HEAD requests
                listed = {key: (size, mtime) for key, size, mtime in self._listing()}
                return {d: listed[self._key(d)] for d in digests if self._key(d) in listed}

            def head(d: Digest) -> tuple[int, float] | None:
                try:
                    meta = obstore.head(self._store, self._key(d))
                except FileNotFoundError:
                    return None
                return int(meta["size"]), meta["last_modified"].timestamp()

            return {d: st for d, st in zip(digests, self._parallel(head, digests), strict=True) if st is not None}

    def _listing(self) -> Iterator[tuple[str, int, float]]:
        for batch in obstore.list(self._store, prefix=f"{OBJECTS}/"):
            for o in batch:
                yield o["path"], int(o["size"]), o["last_modified"].timestamp()

    def iter_objects(self) -> Iterator[tuple[Digest, int, float]]:
        """Every object under ``sha256/``; a key that is not ``sha256/ab/<62 hex>`` is not one and is skipped."""
        with _translated("listing objects", self.url, self._endpoint):
            for key, size, mtime in self._listing():
                before, _, name = key.partition(f"{OBJECTS}/")
                if not before and len(name) == 65 and name[2] == "/":
                    with contextlib.suppress(ShipyardError):
                        yield Digest(name[:2] + name[3:]), size, mtime

    def delete(self, digest: Digest) -> None:
        with _translated("deleting", self.url, self._endpoint):
            obstore.delete(self._store, self._key(digest))  # S3 answers a delete of an absent key with success

    def read(self, digest: Digest) -> Iterator[bytes]:
        with _translated("reading", self.url, self._endpoint):
            try:
                result = obstore.get(self._store, self._key(digest))
            except FileNotFoundError as exc:
                raise _no_bucket(exc, self.url, self._endpoint) or NotFoundError(
                    f"object {digest} is not on remote {self.url}") from exc
            for chunk in result.stream(min_chunk_size=SMALL):
                yield bytes(chunk)

    def upload(self, store: ObjectStore, digests: Sequence[Digest], progress: Progress = no_progress,
               replace: bool = True) -> None:
        """Send each object, re-hashed as it streams: a corrupt local object raises before the put completes,
        so the remote never holds it.

        Another reader never sees half an object: a PUT is atomic, and a multipart upload (above ``SMALL``
        bytes) is published only when it completes, so one killed midway leaves no object. ``replace``
        (the default): overwrite what is there (a damaged copy, or an old one made young again for gc).
        Otherwise, up to ``SMALL`` bytes, one PUT with ``If-None-Match: *`` (obstore's "create" mode): an
        object already there is the same bytes under its name, so "already exists" is success; a service
        that refuses the header gets plain PUTs from then on. (obstore's conditional put holds the whole
        object in memory and sends one PUT, so a larger object stays a multipart upload.)"""
        def send(d: Digest) -> None:
            with store.open(d) as f:
                size = os.fstat(f.fileno()).st_size
            if size <= SMALL:
                self._put_small(self._key(d), b"".join(verified_chunks(store, d)), replace)
            else:
                obstore.put(self._store, self._key(d), verified_chunks(store, d, PART), use_multipart=True)
            progress(size)

        with _translated("uploading", self.url, self._endpoint):
            self._parallel(send, digests)

    def _put_small(self, key: str, body: bytes, replace: bool) -> None:
        if replace or not self._conditional:
            obstore.put(self._store, key, body)
            return
        try:
            obstore.put(self._store, key, body, mode="create")
        except obstore.exceptions.AlreadyExistsError:
            return  # the same bytes, named by their digest, are there already
        except obstore.exceptions.BaseError as exc:
            text = str(exc)
            if not (isinstance(exc, obstore.exceptions.NotSupportedError)
                    or any(sign in text for sign in REFUSED_CONDITION)):
                raise
            self._conditional = False
            obstore.put(self._store, key, body)

    def clean_temp(self, older_than: float) -> int:
        """Nothing to remove: a put is atomic and writes no temp object. The parts of a multipart upload
        killed midway are invisible and removed by the bucket's AbortIncompleteMultipartUpload rule."""
        return 0

    def download(self, digests: Sequence[Digest], store: ObjectStore, progress: Progress = no_progress,
                 sizes: Mapping[Digest, int] | None = None) -> None:
        """Fetch into a temp folder, then into the store in one batch (re-hashed there, one sync).

        With ``sizes``, an object larger than its size is refused from its header, or as soon as more
        bytes than that have streamed in (an endless body never fills the disk)."""
        if not digests:
            return
        with tempfile.TemporaryDirectory(prefix="shipyard-pull-") as tmp:
            def fetch(d: Digest) -> str:
                path = os.path.join(tmp, d.hex)
                most = None if sizes is None else sizes.get(d)
                try:
                    result = obstore.get(self._store, self._key(d))
                except FileNotFoundError as exc:
                    raise _no_bucket(exc, self.url, self._endpoint) or NotFoundError(
                        f"object {d} is not on remote {self.url}") from exc
                announced = int(result.meta.get("size") or 0)
                if most is not None and announced > most:
                    raise _oversized(d, self.url, announced, most)
                got = 0
                with open(path, "wb") as out:
                    for chunk in result.stream(min_chunk_size=min(SMALL, (most or SMALL) + 1)):
                        got += len(chunk)
                        if most is not None and got > most:
                            raise _oversized(d, self.url, got, most)
                        out.write(chunk)
                return path

            with _translated("downloading", self.url, self._endpoint):
                paths = self._parallel(fetch, digests)
            try:
                store.put_many(paths, progress=progress, expect=list(digests))
            except IntegrityError as exc:  # named by the remote, not by the temp file it was downloaded to
                got = str(exc).partition(" has digest ")[2].partition(",")[0] or "other bytes"
                bad = next((d for d in digests if os.path.join(tmp, d.hex) in str(exc)), None)
                raise IntegrityError(f"object {bad or 'downloaded'} on remote {self.url} is corrupt (its bytes hash "
                                     f"to {got}): nothing was stored; push it again from a machine with a good copy "
                                     "(`shipyard models push NAME@V`, `shipyard data push`)") from exc

    def get_ref(self, name: str) -> bytes | None:
        """A ref of at most ``MAX_REF_BYTES``; a larger one is refused from its header or as it streams."""
        key = f"refs/{safe_relpath(name, 'ref name')}"
        with _translated("reading", self.url, self._endpoint):
            try:
                result = obstore.get(self._store, key)
            except FileNotFoundError:
                return None
            if int(result.meta.get("size") or 0) > MAX_REF_BYTES:
                raise ref_too_large(key, self.url)
            data = bytearray()
            for chunk in result.stream(min_chunk_size=64 * 1024):
                data += chunk
                if len(data) > MAX_REF_BYTES:
                    raise ref_too_large(key, self.url)
            return bytes(data)

    def put_ref(self, name: str, data: bytes) -> None:
        with _translated("writing", self.url, self._endpoint):
            obstore.put(self._store, f"refs/{safe_relpath(name, 'ref name')}", data)
