"""Signed models and provenance: ``shipyard sign`` with real EC keys (model-signing bundles), refusals at
``load_model``, ``serve`` and the promote gate under ``signing.require_signed``, model-signing's own verifier on
the same bundle, and in-toto SLSA provenance (DSSE envelopes checked with the public key)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sklearn.dummy import DummyClassifier
from typer.testing import CliRunner

import shipyard
from shipyard.config import Settings, default_db_url
from shipyard.core.artifacts.digest import Digest, object_key
from shipyard.core.artifacts.tree import load_manifest, materialize
from shipyard.core.registry.records import PROVENANCE_ACTION, SIGN_ACTION, ModelVersion
from shipyard.errors import InvalidInputError, SignatureError
from shipyard.interfaces.cli.app import app
from shipyard.wiring import Services, build
from shipyard.wiring.signing import (
    generate_keys,
    record_image_provenance,
    require_signature,
    sign_version,
    signature_status,
    verify_signature,
)
from tests.conftest import cli_env

runner = CliRunner()


def write_config(root: Path, require: bool, trusted: str = "keys/team.pub") -> None:
    (root / "shipyard.yaml").write_text(
        f"signing:\n  key: keys/team.key\n  trusted_keys: [{trusted}]\n  require_signed: {str(require).lower()}\n")


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("saved") / "m"
    shipyard.save_model(DummyClassifier(strategy="constant", constant=1).fit([[0, 0], [1, 1]], [1, 1]), folder,
                        examples=[[0.0, 0.0]])
    return folder


@pytest.fixture
def svc(tmp_path: Path, saved: Path) -> Iterator[Services]:
    """A project with a team key pair (signing.key, trusted) and an outsider's, and m@1, m@2 registered."""
    root = tmp_path / "proj"
    root.mkdir()
    generate_keys(root / "keys" / "team")
    generate_keys(root / "keys" / "outsider")
    write_config(root, require=False)
    home = root / ".shipyard"
    services = build(Settings(home=home, db_url=default_db_url(home), store_path=home / "objects",
                              actor="alice@laptop", root=root), root)
    services.registry.register("m", saved)
    services.registry.register("m", _other(tmp_path))
    yield services
    services.close()


def _other(tmp_path: Path) -> Path:
    """A second saved model whose files differ from the first's."""
    folder = tmp_path / "other"
    shipyard.save_model(DummyClassifier(strategy="constant", constant=0).fit([[0, 0], [1, 1]], [0, 0]), folder,
                        examples=[[1.0, 1.0]])
    return folder


def v(svc: Services, n: int) -> ModelVersion:
    return svc.registry.resolve(f"m@{n}")


def flip_a_byte(svc: Services, mv: ModelVersion) -> str:
    """Flip one byte of the version's largest file, in place in .shipyard/objects; returns its path."""
    entry = max(load_manifest(svc.store, mv.manifest_digest), key=lambda e: e.size)
    obj = svc.settings.store_path / object_key(entry.digest)
    os.chmod(obj, 0o644)
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0x01
    obj.write_bytes(bytes(data))
    return entry.path


def test_keys_are_written_private_and_never_overwritten(tmp_path: Path) -> None:
    private, public, fp = generate_keys(tmp_path / "k" / "ci")
    assert (private.stat().st_mode & 0o777) == 0o600 and public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY")
    assert fp.startswith("sha256:") and len(fp) == 71
    before = private.read_bytes()
    with pytest.raises(InvalidInputError, match="never overwritten"):
        generate_keys(tmp_path / "k" / "ci")
    assert private.read_bytes() == before


def test_a_signed_version_verifies_and_history_names_the_key(svc: Services) -> None:
    _, record = sign_version(svc, v(svc, 1))
    assert record["method"] == "key" and record["manifest"] == str(v(svc, 1).manifest_digest)
    status = signature_status(svc, v(svc, 1))
    assert status.signed and status.verified and status.key == record["key"], status
    assert signature_status(svc, v(svc, 2)).to_dict()["signed"] is False
    history = [e for e in svc.registry.history("m") if e.action == SIGN_ACTION]
    assert history[-1].actor == "alice@laptop" and record["key"] in history[-1].reason


def test_model_signings_own_verifier_accepts_the_bundle(svc: Services, tmp_path: Path) -> None:
    from model_signing import verifying

    _, record = sign_version(svc, v(svc, 1))
    bundle = tmp_path / "model.sig"
    bundle.write_bytes((svc.settings.store_path / object_key(Digest.parse(record["bundle"]))).read_bytes())
    copy = tmp_path / "copy"
    materialize(svc.store, v(svc, 1).manifest_digest, copy)
    config = verifying.Config().use_elliptic_key_verifier(public_key=svc.settings.project_root / "keys/team.pub")
    config.verify(copy, bundle)  # raises on any mismatch
    (copy / "extra.txt").write_text("not signed")
    with pytest.raises(ValueError, match="Signature mismatch"):
        verifying.Config().use_elliptic_key_verifier(
            public_key=svc.settings.project_root / "keys/team.pub").verify(copy, bundle)


def test_without_require_signed_nothing_is_checked(svc: Services) -> None:
    require_signature(svc, v(svc, 2), "load")  # unsigned, and nothing required: no error


def test_require_signed_refuses_unsigned_tampered_swapped_and_untrusted(svc: Services) -> None:
    root = svc.settings.project_root
    write_config(root, require=True)
    with pytest.raises(SignatureError, match=r"m@2 is not loaded: it is not signed"):
        require_signature(svc, v(svc, 2), "load")
    sign_version(svc, v(svc, 1))
    require_signature(svc, v(svc, 1), "promote")

    # an untrusted key: the outsider signs m@2
    sign_version(svc, v(svc, 2), key="keys/outsider.key")
    with pytest.raises(SignatureError, match=r"not in signing\.trusted_keys"):
        require_signature(svc, v(svc, 2), "serve")

    # the signature swapped: m@1's bundle recorded as m@2's
    good = svc.registry.results(v(svc, 1), SIGN_ACTION)[-1][1]
    svc.registry.record_result(v(svc, 2), SIGN_ACTION, good, "swapped")
    with pytest.raises(SignatureError, match="not of this version's files"):
        require_signature(svc, v(svc, 2), "deploy")

    # the stored bundle altered: one byte of the object changed
    obj = svc.settings.store_path / object_key(Digest.parse(good["bundle"]))
    os.chmod(obj, 0o644)
    obj.write_bytes(obj.read_bytes().replace(b'"sig"', b'"sIg"', 1))
    with pytest.raises(SignatureError, match="bundle was altered"):
        require_signature(svc, v(svc, 1), "load")


def test_refusals_through_the_api_the_cli_and_serve(tmp_path: Path, saved: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    home = root / ".shipyard"
    for key in ("SHIPYARD_DB_URL", "SHIPYARD_STORE", "SHIPYARD_RUN_ID", "SHIPYARD_ACTOR"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SHIPYARD_HOME", str(home))
    monkeypatch.chdir(root)
    assert runner.invoke(app, ["keys", "generate", "--out", "keys/team"]).exit_code == 0
    write_config(root, require=True)
    svc = build(Settings(home=home, db_url=default_db_url(home), store_path=home / "objects",
                         actor="alice@laptop", root=root), root)
    try:
        svc.registry.register("m", saved)
        client = shipyard.Client()
        with pytest.raises(SignatureError, match="m@1 is not loaded: it is not signed"):
            client.load_model("m@1")
        signed = runner.invoke(app, ["sign", "m@1", "--json"])
        assert signed.exit_code == 0, signed.output
        assert json.loads(signed.output)["key"].startswith("sha256:")
        ok = runner.invoke(app, ["sign", "--verify", "m@1"])
        assert ok.exit_code == 0 and "verified" in ok.output, ok.output
        assert client.load_model("m@1").predict([[0.0, 0.0]]).tolist() == [1]

        # gc keeps what the records name: the bundle, a provenance statement and its envelope
        _, prov = record_image_provenance(svc, v(svc, 1), {"tag": "m:1", "image_id": "sha256:" + "cd" * 32})
        gc = runner.invoke(app, ["store", "gc", "--grace", "0s", "--json"])
        assert gc.exit_code == 0, gc.output
        assert all(svc.store.has(Digest.parse(prov[k])) for k in ("statement", "envelope"))
        assert runner.invoke(app, ["sign", "--verify", "m@1"]).exit_code == 0

        path = flip_a_byte(svc, v(svc, 1))
        with pytest.raises(SignatureError, match=f"{path} no longer matches its signed digest"):
            client.load_model("m@1")
        bad = runner.invoke(app, ["sign", "--verify", "m@1"])
        assert isinstance(bad.exception, SignatureError) and "no longer matches" in str(bad.exception)
        env = cli_env(SHIPYARD_HOME=str(home))
        done = subprocess.run([sys.executable, "-m", "shipyard", "serve", "m@1", "--port", "1"], cwd=root, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 15, done
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "m@1 is not served" in lines[0] and "Traceback" not in done.stderr, done.stderr
    finally:
        svc.close()


def test_provenance_of_a_stage_version_and_of_an_image(svc: Services) -> None:
    from shipyard.adapters.signing.provenance import verify_envelope
    from shipyard.core.lineage.records import CodeVersion, RunRecord, RunStatus

    root = svc.settings.project_root
    run = RunRecord(id="r" * 32, name="train", experiment="pipeline", status=RunStatus.FINISHED, start_time=1.0,
                    end_time=2.0, user="alice", host="h", pid=1, code=CodeVersion(commit="c" * 40, repo="x/y"),
                    params={"lr": "0.1"}, tags={"shipyard.stage": "train", "shipyard.cmd": "python train.py"},
                    inputs={"data/iris.csv": Digest.of_bytes(b"rows")})
    from shipyard.wiring.signing import record_version_provenance

    _, record = record_version_provenance(svc, v(svc, 1), run)
    statement = json.loads((svc.settings.store_path / object_key(Digest.parse(record["statement"]))).read_bytes())
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    build_def = statement["predicate"]["buildDefinition"]
    assert build_def["externalParameters"] == {"stage": "train", "cmd": "python train.py", "params": {"lr": "0.1"}}
    assert {"name": "data/iris.csv", "digest": {"sha256": Digest.of_bytes(b"rows").hex}} in \
        build_def["resolvedDependencies"]
    assert any(d.get("digest") == {"gitCommit": "c" * 40} for d in build_def["resolvedDependencies"])
    assert statement["subject"] == [{"name": "m@1", "digest": {"sha256": v(svc, 1).manifest_digest.hex}}]
    envelope = (svc.settings.store_path / object_key(Digest.parse(record["envelope"]))).read_bytes()
    assert verify_envelope(envelope, root / "keys/team.pub") == statement
    with pytest.raises(SignatureError, match="does not verify"):
        verify_envelope(envelope, root / "keys/outsider.pub")

    # an image: the record `shipyard build` makes once an engine built it (no engine is started here)
    _, image = record_image_provenance(svc, v(svc, 1), {"tag": "shipyard/m:1", "image_id": "sha256:" + "ab" * 32,
                                                        "base": "python:3.11-slim", "engine": "docker"})
    assert image["image"] == "shipyard/m:1"
    body = verify_envelope((svc.settings.store_path / object_key(Digest.parse(image["envelope"]))).read_bytes(),
                           root / "keys/team.pub")
    assert body["subject"] == [{"name": "shipyard/m:1", "digest": {"sha256": "ab" * 32}}]
    assert [r["image"] for _, r in svc.registry.results(v(svc, 1), PROVENANCE_ACTION)] == [None, "shipyard/m:1"]

    # without a key, provenance is recorded unsigned
    (root / "shipyard.yaml").write_text("signing: {}\n")
    _, unsigned = record_version_provenance(svc, v(svc, 2), run)
    assert unsigned["envelope"] is None


def test_log_model_in_a_stage_run_records_provenance(svc: Services, saved: Path) -> None:
    """The hook ``log_model`` runs: a run tagged as a pipeline stage's gets the version's provenance; any
    other run does not."""
    tracker = svc.tracker
    stage = tracker.start_run(name="train", experiment="pipeline", tags={"shipyard.stage": "train",
                                                                         "shipyard.cmd": "python train.py"})
    tracker.log_params(stage.id, {"lr": "0.1"})
    plain = tracker.start_run(name="notebook")
    client = shipyard.Client(svc.settings.project_root)
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    made = client.log_model(stage.id, model, "staged")
    other = client.log_model(plain.id, model, "unstaged")
    records = svc.registry.results(made, PROVENANCE_ACTION)
    assert len(records) == 1 and records[0][1]["subject"] == made.ref and records[0][1]["envelope"]
    statement = json.loads((svc.settings.store_path / object_key(Digest.parse(records[0][1]["statement"])))
                           .read_bytes())
    assert statement["predicate"]["buildDefinition"]["externalParameters"]["params"] == {"lr": "0.1"}
    assert statement["predicate"]["runDetails"]["metadata"]["invocationId"] == stage.id
    assert svc.registry.results(other, PROVENANCE_ACTION) == []
    client.close()


def test_verify_is_the_same_check_as_status(svc: Services) -> None:
    sign_version(svc, v(svc, 1))
    key, files = verify_signature(svc, v(svc, 1))
    assert files == len(load_manifest(svc.store, v(svc, 1).manifest_digest)) and key.startswith("sha256:")
    shutil.rmtree(svc.settings.project_root / "keys")
    assert not signature_status(svc, v(svc, 1)).verified


def test_shipyard_run_records_the_provenance_of_the_version_its_stage_registers(tmp_path: Path) -> None:
    """A real pipeline: `shipyard run` runs a stage whose script calls log_model; the version it registers gets
    an SLSA statement naming the stage, its params and the digests of what it read (unsigned: no key here)."""
    root = tmp_path / "pipe"
    (root / "src").mkdir(parents=True)
    (root / "data.csv").write_text("x,y\n0,1\n")
    (root / "params.yaml").write_text("train:\n  C: 0.5\n")
    (root / "src" / "train.py").write_text(
        "import shipyard\nfrom sklearn.dummy import DummyClassifier\n"
        "shipyard.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), 'piped')\n")
    (root / "shipyard.yaml").write_text(
        "version: 1\nparams: params.yaml\nstages:\n  train:\n    cmd: python src/train.py\n"
        "    deps: [data.csv, src/train.py]\n    params: [train.C]\n")
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    done = subprocess.run([sys.executable, "-m", "shipyard", "run"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with shipyard.Client(root) as client:
        mv = client.get_model_version("piped", 1)
        (event, record), = client.services.registry.results(mv, PROVENANCE_ACTION)
        assert record["envelope"] is None and "unsigned" in event.reason
        body = json.loads((root / ".shipyard" / "objects" / object_key(Digest.parse(record["statement"])))
                          .read_bytes())
    build_def = body["predicate"]["buildDefinition"]
    assert build_def["externalParameters"]["stage"] == "train"
    assert build_def["externalParameters"]["params"] == {"train.C": "0.5"}
    assert {"name": "data.csv", "digest": {"sha256": Digest.of_bytes(b"x,y\n0,1\n").hex}} in \
        build_def["resolvedDependencies"]
    assert body["predicate"]["runDetails"]["metadata"]["invocationId"] == mv.run_id


def test_certificate_signing_verifies_here_and_with_model_signings_certificate_verifier(
        svc: Services, tmp_path: Path) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    from model_signing import verifying

    root = svc.settings.project_root
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "team CA")])

    def cert(subject: x509.Name, public: ec.EllipticCurvePublicKey, ca: bool) -> bytes:
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public)
             .serial_number(x509.random_serial_number()).not_valid_before(now)
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        b = b.add_extension(x509.KeyUsage(not ca, False, False, False, False, ca, ca, False, False), critical=True)
        if not ca:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        return b.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    team = serialization.load_pem_private_key((root / "keys/team.key").read_bytes(), None)
    assert isinstance(team, ec.EllipticCurvePrivateKey)
    (root / "keys/ca.crt").write_bytes(cert(ca_name, ca_key.public_key(), True))
    (root / "keys/team.crt").write_bytes(
        cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")]), team.public_key(), False))
    _, record = sign_version(svc, v(svc, 1), certificate="keys/team.crt", chain=["keys/ca.crt"])
    assert record["method"] == "certificate"
    assert signature_status(svc, v(svc, 1)).verified
    (tmp_path / "model.sig").write_bytes(
        (svc.settings.store_path / object_key(Digest.parse(record["bundle"]))).read_bytes())
    materialize(svc.store, v(svc, 1).manifest_digest, tmp_path / "copy")
    verifying.Config().use_certificate_verifier(certificate_chain=[root / "keys/ca.crt"]).verify(
        tmp_path / "copy", tmp_path / "model.sig")


def test_the_cli_imports_no_signing_library_until_it_signs() -> None:
    code = ("import sys\nfrom shipyard.interfaces.cli.app import main\nsys.argv = ['shipyard', 'sign', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('model_signing', 'sigstore', 'securesystemslib', 'in_toto_attestation', 'cryptography')]\n"
            "print('HEAVY', heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=cli_env())
    assert "--verify" in done.stdout and "HEAVY []" in done.stdout, done.stdout + done.stderr


def test_a_served_alias_does_not_follow_to_an_unsigned_version(svc: Services, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve m@prod` follows the alias only to versions that verify: moved to an unsigned m@2, it keeps m@1
    (and says so on stderr); once m@2 is signed, it moves."""
    import time

    import httpx

    from tests.conftest import serving_process

    root = svc.settings.project_root
    write_config(root, require=True)
    sign_version(svc, v(svc, 1))
    svc.registry.set_alias("m", "prod", 1)
    env = cli_env(SHIPYARD_HOME=str(svc.settings.home))
    monkeypatch.chdir(root)  # the server reads shipyard.yaml where it runs
    log = tmp_path / "serve.log"

    def version(url: str) -> str:
        return httpx.get(f"{url}/v2/models/m", timeout=5).headers["x-model-version"]

    def wait(what: str, ready: Any) -> None:
        deadline = time.monotonic() + 60
        while not ready():
            assert time.monotonic() < deadline, f"{what}: {log.read_text()[-2000:]}"
            time.sleep(0.05)

    with open(log, "wb") as sink, serving_process(env, "m@prod", "--poll", "0.1", stderr=sink) as (url, _):
        assert version(url) == "1"
        svc.registry.set_alias("m", "prod", 2)
        wait("the follower never refused m@2", lambda: "m@2 is not served: it is not signed" in log.read_text())
        assert version(url) == "1"
        sign_version(svc, v(svc, 2))
        wait("the follower never moved to the signed m@2", lambda: version(url) == "2")


# --- hardening (issue 11's attack findings) ----------------------------------------------------------------


def test_a_fifo_or_a_device_as_a_key_file_is_refused_not_waited_on(tmp_path: Path) -> None:
    from shipyard.adapters.signing.bundle import sign_files
    from shipyard.adapters.signing.keys import generate, load_private, load_public
    from shipyard.errors import ConfigError

    private, public, _ = generate(tmp_path / "team")
    fifo = tmp_path / "fifo.pub"
    os.mkfifo(fifo)  # nobody writes to it: a blocking open would wait for ever
    for load, path in ((load_public, fifo), (load_private, fifo), (load_public, Path("/dev/zero")),
                       (load_public, tmp_path)):
        with pytest.raises(ConfigError, match=f"^{path} is not a regular file"):
            load(path)
    with pytest.raises(ConfigError, match=f"^{fifo} is not a regular file"):  # model-signing would open it
        sign_files("m", [("a", "0" * 64)], key=private, certificate=fifo)
    assert load_public(public) is not None and load_private(private) is not None


def test_an_untrusted_signature_never_undoes_a_trusted_one(svc: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Any recorded signature that verifies counts: an outsider's newer signature neither breaks m@1 nor counts
    for m@2; `sign` with an untrusted key says so on stderr; when none verifies, the newest failure is named."""
    root = svc.settings.project_root
    write_config(root, require=True)
    _, team = sign_version(svc, v(svc, 1))
    monkeypatch.setenv("SHIPYARD_HOME", str(svc.settings.home))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE", "SHIPYARD_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(root)
    done = runner.invoke(app, ["sign", "m@1", "--key", "keys/outsider.key"])
    assert done.exit_code == 0, done.output
    assert "is not in signing.trusted_keys: this signature will not count" in done.output
    assert "not in signing.trusted_keys" not in runner.invoke(app, ["sign", "m@2"]).output
    require_signature(svc, v(svc, 1), "load")
    assert signature_status(svc, v(svc, 1)).key == team["key"]

    svc.registry.record_result(v(svc, 2), SIGN_ACTION, team, "m@1's bundle, recorded as m@2's")
    sign_version(svc, v(svc, 2), key="keys/outsider.key")
    svc.registry.record_result(v(svc, 2), SIGN_ACTION, team, "m@1's bundle again")
    status = signature_status(svc, v(svc, 2))
    assert status.verified, status  # `sign m@2` above is still there, older than both
    flip_a_byte(svc, v(svc, 2))  # the files no longer match: the hash pass fails whichever bundle verified
    with pytest.raises(SignatureError, match="no longer matches its signed digest"):
        require_signature(svc, v(svc, 2), "load")


def test_when_no_signature_verifies_the_newest_failure_is_named(svc: Services) -> None:
    write_config(svc.settings.project_root, require=True)
    sign_version(svc, v(svc, 2), key="keys/outsider.key")
    _, team = sign_version(svc, v(svc, 1))
    svc.registry.record_result(v(svc, 2), SIGN_ACTION, team, "m@1's bundle, recorded as m@2's")
    with pytest.raises(SignatureError, match=r"none of its 2 signatures verifies; the newest: the signature is not "
                                             r"of this version's files"):
        require_signature(svc, v(svc, 2), "load")


def test_keys_generate_in_a_subfolder_names_paths_from_the_project_root(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shipyard.yaml").write_text("version: 1\n")
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path / "src")
    done = runner.invoke(app, ["keys", "generate", "--out", "keys/sub"])
    assert done.exit_code == 0, done.output
    assert "wrote src/keys/sub.key (private" in done.output
    assert "signing: {key: src/keys/sub.key, trusted_keys: [src/keys/sub.pub]}" in done.output
    assert (tmp_path / "src" / "keys" / "sub.key").is_file()


def test_sign_with_a_certificate_that_is_not_one_is_a_one_line_usage_error(svc: Services) -> None:
    from shipyard.errors import ConfigError

    with pytest.raises(ConfigError, match=r"keys/team\.pub is not a PEM certificate: .* it holds a public key$"):
        sign_version(svc, v(svc, 1), certificate="keys/team.pub")
    assert svc.registry.results(v(svc, 1), SIGN_ACTION) == []


def test_models_show_says_who_signed_and_whether_it_verifies(svc: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(svc.settings.home))
    for name in ("SHIPYARD_DB_URL", "SHIPYARD_STORE", "SHIPYARD_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(svc.settings.project_root)
    _, record = sign_version(svc, v(svc, 1))
    sign_version(svc, v(svc, 2), key="keys/outsider.key")

    def shown(n: int) -> dict[str, Any]:
        done = runner.invoke(app, ["models", "show", f"m@{n}", "--json"])
        assert done.exit_code == 0, done.output
        return dict(json.loads(done.output)["signed"])

    assert shown(1)["verified"] is True and shown(1)["key"] == record["key"]
    two = shown(2)
    assert two["signed"] is True and two["verified"] is False and "not in signing.trusted_keys" in two["reason"]
    flip_a_byte(svc, v(svc, 1))  # not re-hashed by `models show`: the bundle still verifies; `sign --verify` tells
    assert shown(1)["verified"] is True
    table = runner.invoke(app, ["models", "show", "m@2"], env={"COLUMNS": "300"})
    assert "not verified" in table.output and "schema" in table.output, table.output
