"""in-toto SLSA v1 provenance statements (``in-toto-attestation``), signed as DSSE envelopes with
securesystemslib's ``CryptoSigner`` over the configured EC key."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shipyard.adapters.signing import need
from shipyard.adapters.signing.keys import fingerprint, load_private, load_public
from shipyard.errors import SignatureError

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024


def statement(subjects: Sequence[Mapping[str, Any]], build_type: str, external: Mapping[str, Any],
              internal: Mapping[str, Any], dependencies: Sequence[Mapping[str, Any]], builder: str,
              invocation: str, started: float | None, finished: float | None) -> bytes:
    """The in-toto v1 Statement (canonical JSON) whose predicate is SLSA provenance v1: ``subjects`` are
    resource descriptors (``name``, ``digest``); the build definition's parameters and resolved dependencies
    (data and code digests); run details (builder id, invocation id and times)."""
    metadata: dict[str, Any] = {"invocationId": invocation}
    if started is not None:
        metadata["startedOn"] = _rfc3339(started)
    if finished is not None:
        metadata["finishedOn"] = _rfc3339(finished)
    predicate = {
        "buildDefinition": {"buildType": build_type, "externalParameters": dict(external),
                            "internalParameters": dict(internal), "resolvedDependencies": list(dependencies)},
        "runDetails": {"builder": {"id": builder}, "metadata": metadata},
    }
    body = {"_type": STATEMENT_V1, "subject": [{"name": s["name"], "digest": dict(s["digest"])} for s in subjects],
            "predicateType": SLSA_PROVENANCE_V1, "predicate": predicate}
    _validate(body)
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _validate(body: dict[str, Any]) -> None:
    """Check the statement with ``in-toto-attestation`` (the v1 Statement and the SLSA v1 predicate's schema);
    without the governance extra the statement is written unchecked (its shape is fixed above)."""
    try:
        from google.protobuf import json_format  # type: ignore[import-untyped]
        from in_toto_attestation.predicates.provenance.v1 import provenance_pb2  # type: ignore[import-untyped]
        from in_toto_attestation.v1 import statement as st  # type: ignore[import-untyped]
        from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor  # type: ignore[import-untyped]
    except ImportError:
        return
    json_format.ParseDict(body["predicate"], provenance_pb2.Provenance())
    subjects = [ResourceDescriptor(name=s["name"], digest=s["digest"]).pb for s in body["subject"]]
    st.Statement(subjects, body["predicateType"], body["predicate"]).validate()


def sign_statement(data: bytes, key: Path) -> tuple[bytes, str]:
    """A DSSE envelope over the statement ``data``, signed with the EC private key at ``key``; and the key's
    fingerprint (the signature's keyid)."""
    need("securesystemslib", "signing provenance")
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

    private = load_private(key)
    keyid = fingerprint(private.public_key())
    signer = CryptoSigner(private, SSlibKey.from_crypto(private.public_key(), keyid=keyid))
    envelope = Envelope(payload=data, payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(signer)
    return json.dumps(envelope.to_dict(), sort_keys=True).encode(), keyid


def verify_envelope(data: bytes, public_key: Path) -> dict[str, Any]:
    """The statement a DSSE envelope carries, if the key at ``public_key`` signed it; SignatureError otherwise."""
    need("securesystemslib", "verifying provenance")
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    if len(data) > MAX_ENVELOPE_BYTES:
        raise SignatureError("the provenance envelope is larger than any Shipyard writes")
    key = load_public(public_key)
    try:
        envelope = Envelope.from_dict(json.loads(data))
        envelope.verify([SSlibKey.from_crypto(key, keyid=fingerprint(key))], 1)
        body = json.loads(envelope.payload)
    except VerificationError as exc:
        raise SignatureError(f"the provenance envelope does not verify with {fingerprint(key)}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise SignatureError(f"not a DSSE envelope ({str(exc)[:200]})") from exc
    if envelope.payload_type != PAYLOAD_TYPE or not isinstance(body, dict):
        raise SignatureError("the envelope does not carry an in-toto statement")
    return body


def _rfc3339(when: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(when, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
