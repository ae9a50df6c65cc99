"""Secrets by reference (env:, file:, vault:), against a real OpenBao dev server: resolved at use, cached with a
TTL, rotated without a restart, and never written to the store, the database, a log or a rendered manifest."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shipyard.adapters.secrets.local import EnvSecrets, FileSecrets
from shipyard.adapters.secrets.vault import VaultSecrets
from shipyard.core.governance.config import VaultSpec, secrets_config
from shipyard.core.secrets import MAX_SECRET_BYTES, Resolver, parse_reference, redact_environ
from shipyard.errors import BackendUnavailableError, ConfigError
from shipyard.wiring.secrets import make_resolver
from tests.conftest import cli_env, free_port, make_bucket, serving_process, shipyard
from tests.k8s_validators import K8sValidator, k8s_validator  # noqa: F401

TOKEN = uuid.uuid4().hex  # every value is unique, so a grep for it finds only a leak
VALUES = {"api_key": f"key-one-{TOKEN}", "aws_key_id": f"AKIA{TOKEN[:16].upper()}",
          "aws_secret": f"aws-secret-{TOKEN}", "db_marker": f"dbfile{TOKEN[:12]}"}
ROTATED = f"key-two-{TOKEN}"


@pytest.fixture(scope="module")
def bao(openbao: str) -> Any:
    """A root hvac client of the OpenBao dev server, with the test's secrets at secret/shipyard."""
    import hvac

    client = hvac.Client(url=openbao, token="root")
    client.secrets.kv.v2.create_or_update_secret(path="shipyard", mount_point="secret", secret={
        "api_key": VALUES["api_key"], "aws_key_id": VALUES["aws_key_id"], "aws_secret": VALUES["aws_secret"]})
    client.sys.create_or_update_policy("shipyard-read", 'path "secret/data/shipyard*" { capabilities = ["read"] }')
    return client


class Counting:
    scheme = "env"

    def __init__(self) -> None:
        self.reads = 0
        self.value = "v1"
        self.down = False

    def read(self, path: str) -> str:
        self.reads += 1
        time.sleep(0.01)  # long enough for concurrent misses to overlap
        if self.down:
            raise BackendUnavailableError("down")
        return f"{self.value}:{path}"


def test_references_are_parsed_and_anything_else_is_refused_without_echoing_it() -> None:
    assert str(parse_reference("env:API_KEY")) == "env:API_KEY"
    assert parse_reference("vault:secret/team/db#url").vault_parts == ("secret", "team/db", "url")
    assert parse_reference("file:/var/run/secrets/token").path == "/var/run/secrets/token"
    for bad in ("hunter2-plain-value", "env:", "env:1BAD", "vault:secret#k", "vault:secret/p", "vault:s/../x#k",
                "aws:thing", "file:", "env:A\nB"):
        with pytest.raises(ConfigError) as err:
            parse_reference(bad, "--api-key")
        message = str(err.value)
        assert "env:NAME, file:PATH or vault:MOUNT/PATH#KEY" in message and "\n" not in message
        assert bad not in message or bad in ("env:", "file:")


def test_a_cached_value_lives_for_the_ttl_and_concurrent_misses_read_once() -> None:
    store, now = Counting(), [100.0]
    resolver = Resolver({"env": lambda: store}, ttl=300, clock=lambda: now[0])
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(resolver.resolve("env:X"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["v1:X"] * 8 and store.reads == 1
    store.value = "v2"
    now[0] += 299
    assert resolver.resolve("env:X") == "v1:X"  # still fresh
    now[0] += 2
    assert resolver.resolve("env:X") == "v2:X" and store.reads == 2
    store.down = True  # the backend down when the value expires: the last value is kept, asked again later
    now[0] += 301
    assert resolver.resolve("env:X") == "v2:X" and store.reads == 3
    assert resolver.resolve("env:X") == "v2:X" and store.reads == 3  # not asked at every lookup while down
    with pytest.raises(BackendUnavailableError):
        resolver.resolve("env:NEVER_READ")
    assert "v2" not in repr(resolver)


def test_env_and_file_references(tmp_path: Path) -> None:
    assert EnvSecrets({"K": "abc"}).read("K") == "abc"
    with pytest.raises(ConfigError, match="K2 is not set"):
        EnvSecrets({}).read("K2")
    files = FileSecrets(tmp_path)
    (tmp_path / "token").write_text("s3cret\n")
    assert files.read("token") == "s3cret"  # the trailing newline of `echo` is not part of the secret
    assert files.read(str(tmp_path / "token")) == "s3cret"
    (tmp_path / "big").write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    os.mkfifo(tmp_path / "fifo")  # a reader of a FIFO would block forever
    (tmp_path / "folder").mkdir()
    for path, why in (("big", "larger than 64 KiB"), ("fifo", "not a regular file"), ("folder", "not a regular"),
                      ("missing", "does not exist"), ("../token", "may not leave the project")):
        with pytest.raises(ConfigError, match=why):
            files.read(path)


def test_credential_variables_are_redacted() -> None:
    env = {"PATH": "/usr/bin", "AWS_SECRET_ACCESS_KEY": "x", "GITHUB_TOKEN": "y", "DB_PASSWORD": "z",
           "API_KEY": "k", "DATABASE": "postgresql://app:pw@db/app", "HOME": "/home/a", "VAULT_TOKEN": "env:T",
           "SSH_AUTH_SOCK": "/tmp/agent", "HF_TOKEN": "hf_x", "KEYBOARD": "us"}
    shown = redact_environ(env)
    assert {k for k, v in shown.items() if v == "***"} == {"AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "DB_PASSWORD",
                                                         "API_KEY", "DATABASE", "SSH_AUTH_SOCK", "HF_TOKEN"}
    assert shown["VAULT_TOKEN"] == "env:T"  # a reference is not a secret


def _vault(openbao: str, spec: VaultSpec, env: dict[str, str], address: str | None = None) -> VaultSecrets:
    local = EnvSecrets(env)
    return VaultSecrets(spec, address or openbao, lambda ref: local.read(parse_reference(ref).path))


def test_vault_token_and_approle_logins_and_their_errors(openbao: str, bao: Any) -> None:
    token = bao.auth.token.create(policies=["shipyard-read"], ttl="1h")["auth"]["client_token"]
    store = _vault(openbao, VaultSpec(), {"VAULT_TOKEN": token})
    assert store.read("secret/shipyard#api_key") == VALUES["api_key"]

    mount = f"approle-{uuid.uuid4().hex[:8]}"
    bao.sys.enable_auth_method("approle", path=mount)
    bao.auth.approle.create_or_update_approle("shipyard", token_policies=["shipyard-read"], mount_point=mount)
    role_id = bao.auth.approle.read_role_id("shipyard", mount_point=mount)["data"]["role_id"]
    secret_id = bao.auth.approle.generate_secret_id("shipyard", mount_point=mount)["data"]["secret_id"]
    approle = _vault(openbao, VaultSpec(auth="approle", role_id="env:R", secret_id="env:S", mount=mount),
                     {"R": role_id, "S": secret_id})
    assert approle.read("secret/shipyard#aws_secret") == VALUES["aws_secret"]

    bao.secrets.kv.v2.create_or_update_secret(path="other", mount_point="secret", secret={"k": "v"})
    cases = [(store, "secret/other#k", ConfigError, "permission denied"),
             (approle, "secret/other#k", ConfigError, "permission denied"),
             (_vault(openbao, VaultSpec(), {"VAULT_TOKEN": "root"}), "secret/nothing-here#k", ConfigError,
              "no secret at that path"),
             (store, "secret/shipyard#nokey", ConfigError, "has no key 'nokey'"),
             (_vault(openbao, VaultSpec(), {"VAULT_TOKEN": "wrong-token"}), "secret/shipyard#api_key", ConfigError,
              "refused"),
             (_vault(openbao, VaultSpec(), {"VAULT_TOKEN": token}, f"http://127.0.0.1:{free_port()}"),
              "secret/shipyard#api_key", BackendUnavailableError, "cannot be reached"),
             (_vault(openbao, VaultSpec(auth="approle", role_id="env:R", secret_id="env:S", mount=mount),
                     {"R": role_id, "S": "bad-secret-id"}), "secret/shipyard#api_key", ConfigError, "refused")]
    for chosen, path, kind, words in cases:
        started = time.monotonic()
        with pytest.raises(kind) as err:
            chosen.read(path)
        message = str(err.value)
        assert words in message and (f"vault:{path}" in message or "AppRole login" in message), message
        assert "\n" not in message and time.monotonic() - started < 10
        for value in (*VALUES.values(), token, secret_id):
            assert value not in message


def test_a_value_rotated_in_vault_is_read_after_the_ttl(openbao: str, bao: Any) -> None:
    bao.secrets.kv.v2.create_or_update_secret(path="rotating", mount_point="secret", secret={"k": "old"})
    now = [0.0]
    spec = secrets_config({"ttl": 60, "vault": {"address": openbao, "token": "env:SHIPYARD_TEST_ROOT_TOKEN"}})
    os.environ["SHIPYARD_TEST_ROOT_TOKEN"] = "root"
    try:
        resolver = make_resolver(Path("/nonexistent"), spec, clock=lambda: now[0])
        assert resolver.resolve("vault:secret/rotating#k") == "old"
        bao.secrets.kv.v2.create_or_update_secret(path="rotating", mount_point="secret", secret={"k": "new"})
        now[0] = 59
        assert resolver.resolve("vault:secret/rotating#k") == "old"
        now[0] = 61
        assert resolver.resolve("vault:secret/rotating#k") == "new"
    finally:
        del os.environ["SHIPYARD_TEST_ROOT_TOKEN"]


def test_literal_credentials_in_shipyard_yaml_are_refused(tmp_path: Path) -> None:
    from shipyard.core.project.loader import load_config

    (tmp_path / "shipyard.yaml").write_text("version: 1\nremotes:\n  origin:\n    url: s3://b/p\n"
                                            "    access_key_id: AKIAPLAINVALUE\n    secret_access_key: env:S\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert "must be a secret reference" in str(err.value) and "AKIAPLAINVALUE" not in str(err.value)
    (tmp_path / "shipyard.yaml").write_text("version: 1\nsecrets:\n  vault:\n    token: hvs.plaintoken\n")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path)
    assert "secrets.vault.token must be a secret reference" in str(err.value) and "plaintoken" not in str(err.value)


DEPLOY = """\
deploy:
  model_source: registry
  secrets_provider: {provider}
  vault_role: shipyard-server
  secrets:
    API_TOKEN: {{secret: api, key: token, vault: "vault:secret/shipyard#api_key", store: vault}}
  registry:
    database: {{secret: db, key: url, vault: "vault:secret/shipyard#db_url", store: vault}}
    store: s3://team-models/store
    credentials: {{secret: s3, vault: "vault:secret/shipyard"}}
  environments:
    staging: {{}}
"""


def _render(provider: str) -> list[dict[str, Any]]:
    from shipyard.core.deploy.config import deploy_config
    from shipyard.core.deploy.layout import applied_objects
    from shipyard.core.deploy.manifests import Target, plan

    spec = deploy_config(yaml.safe_load(DEPLOY.format(provider=provider))["deploy"])
    target = Target("iris", 2, "staging", "registry.example.com/iris@sha256:" + "ab" * 32, "sha256:" + "0" * 64)
    return applied_objects(plan(spec, target), lambda *a: {})


def test_manifests_reference_external_secrets_or_vault_agent(k8s_validator: K8sValidator) -> None:  # noqa: F811
    external = _render("external-secrets")
    secrets = {d["metadata"]["name"]: d for d in external if d["kind"] == "ExternalSecret"}
    assert sorted(secrets) == ["api", "db", "s3"]
    assert secrets["db"]["spec"]["data"] == [{"secretKey": "url",
                                              "remoteRef": {"key": "secret/shipyard", "property": "db_url"}}]
    assert secrets["db"]["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "vault"}
    assert {e["remoteRef"]["property"] for e in secrets["s3"]["spec"]["data"]} == {"AWS_ACCESS_KEY_ID",
                                                                                   "AWS_SECRET_ACCESS_KEY"}
    pod = next(d for d in external if d["kind"] == "Deployment")["spec"]["template"]
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["SHIPYARD_DB_URL"]["valueFrom"] == {"secretKeyRef": {"name": "db", "key": "url"}}

    agent = _render("vault-agent")
    assert not [d for d in agent if d["kind"] == "ExternalSecret"]
    pod = next(d for d in agent if d["kind"] == "Deployment")["spec"]["template"]
    notes = pod["metadata"]["annotations"]
    assert notes["vault.hashicorp.com/agent-inject"] == "true"
    assert notes["vault.hashicorp.com/role"] == "shipyard-server"
    assert notes["vault.hashicorp.com/agent-inject-secret-shipyard-db-url"] == "secret/data/shipyard"
    assert '"db_url"' in notes["vault.hashicorp.com/agent-inject-template-shipyard-db-url"]
    assert notes["vault.hashicorp.com/agent-inject-secret-api-token"] == "secret/data/shipyard"
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["SHIPYARD_DB_URL"] == {"name": "SHIPYARD_DB_URL", "value": "file:/vault/secrets/shipyard-db-url"}
    assert env["SHIPYARD_STORE_ACCESS_KEY_ID"]["value"] == "file:/vault/secrets/aws-access-key-id"
    assert "AWS_SECRET_ACCESS_KEY" not in env
    k8s_validator.validate([d for d in external + agent if d["kind"] in ("Deployment", "ExternalSecret")])
    with pytest.raises(Exception, match="vault_role"):
        from shipyard.core.deploy.config import deploy_config

        deploy_config({"secrets_provider": "vault-agent"})


def _everything(root: Path, db: Path, logs: list[Path]) -> bytes:
    """The bytes of every file under .shipyard/, a dump of the database, every log and rendered manifest."""
    blobs = [p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()]
    with sqlite3.connect(db) as conn:
        blobs.append("\n".join(conn.iterdump()).encode())
    blobs += [p.read_bytes() for p in logs]
    for provider in ("kubernetes", "external-secrets", "vault-agent"):
        blobs.append(json.dumps(_render(provider)).encode())
    return b"\n".join(blobs)


def test_credentials_come_from_openbao_and_are_never_stored(tmp_path: Path, openbao: str, bao: Any,
                                                            s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A remote's keys, the database URL and the server's API key all come from OpenBao; rotating the key there
    is taken by the running server after the TTL; no value reaches .shipyard/, the database, a log or a manifest."""
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / "data" / "a.csv").write_text("a\n")
    db = tmp_path / VALUES["db_marker"] / "meta.db"
    db.parent.mkdir()
    secret = {"api_key": VALUES["api_key"], "aws_key_id": VALUES["aws_key_id"], "aws_secret": VALUES["aws_secret"],
              "db_url": f"sqlite:///{db}"}
    bao.secrets.kv.v2.create_or_update_secret(path="shipyard", mount_point="secret", secret=secret)
    token = bao.auth.token.create(policies=["shipyard-read"], ttl="1h")["auth"]["client_token"]
    (root / "shipyard.yaml").write_text(
        f"version: 1\nremotes:\n  origin:\n    url: s3://{make_bucket(s3_endpoint)}/p\n"
        f"    endpoint_url: {s3_endpoint}\n    region: us-east-1\n"
        "    access_key_id: vault:secret/shipyard#aws_key_id\n    secret_access_key: vault:secret/shipyard#aws_secret\n"
        f"default_remote: origin\nsecrets:\n  ttl: 0.5\n  vault:\n    address: {openbao}\n")
    env = {k: v for k, v in cli_env().items() if not k.startswith(("AWS_", "VAULT_"))}
    env.update(HOME=str(tmp_path), VAULT_TOKEN=token, SHIPYARD_DB_URL="vault:secret/shipyard#db_url")
    monkeypatch.chdir(root)

    shipyard("data", "add", "data", env=env, cwd=root)
    pushed = json.loads(shipyard("data", "push", "--json", env=env, cwd=root).stdout)
    assert pushed["transferred"] == 2  # no AWS_* variable, no ~/.aws: the keys came from OpenBao
    code = ("import shipyard\nfrom sklearn.dummy import DummyClassifier\nwith shipyard.start_run():\n"
            "    m = DummyClassifier(strategy='constant', constant=3).fit([[0, 0]] * 2, [3] * 2)\n"
            "    shipyard.log_model(m, 'guarded', examples=[[0.0, 0.0]])\n")
    subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True, timeout=120)
    assert db.exists() and not (root / ".shipyard" / "shipyard.db").exists()  # the URL from OpenBao was used

    server_log = tmp_path / "server.log"
    row = {"instances": [[1.0, 2.0]]}
    with open(server_log, "wb") as err, \
            serving_process(env, "guarded", "--log-payloads", "--api-key", "vault:secret/shipyard#api_key",
                            stderr=err) as (url, _):
        assert httpx.post(f"{url}/predict", json=row).status_code == 401
        assert httpx.post(f"{url}/predict", json=row, headers={"x-api-key": VALUES["api_key"]}).status_code == 200
        bao.secrets.kv.v2.create_or_update_secret(path="shipyard", mount_point="secret",
                                                  secret={**secret, "api_key": ROTATED})
        deadline = time.monotonic() + 30
        while httpx.post(f"{url}/predict", json=row, headers={"x-api-key": ROTATED}).status_code != 200:
            assert time.monotonic() < deadline, "the rotated key was not taken within 30 s"
            time.sleep(0.1)
        assert httpx.post(f"{url}/predict", json=row, headers={"x-api-key": VALUES["api_key"]}).status_code == 401

    bad = shipyard("serve", "guarded", "--api-key", "vault:secret/shipyard#missing", "--port", str(free_port()),
                   env=env, cwd=root, check=False)
    assert bad.returncode == 2 and "has no key 'missing'" in bad.stderr and "Traceback" not in bad.stderr
    everything = _everything(root / ".shipyard", db, [server_log])
    assert b"guarded" in everything and b"inference-logs/" in everything  # the search sees records and logs
    for value in (*VALUES.values(), ROTATED, token):
        assert value.encode() not in everything, value


def test_a_git_token_from_openbao_is_sent_as_a_header_and_never_shown(tmp_path: Path, openbao: str,
                                                                       bao: Any) -> None:
    """deploy.git_token: the GitOps push authenticates with a token read from Vault, given to git through its
    environment (an http.extraHeader), never in the URL, a command line, a file or a message."""
    import base64
    import http.server

    from shipyard.adapters.deploy.gitops import GitOpsRepo

    bao.secrets.kv.v2.create_or_update_secret(path="git", mount_point="secret", secret={"token": ROTATED})
    seen: list[str] = []

    class Refusing(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            self.send_response(403)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["SHIPYARD_TEST_ROOT_TOKEN"] = "root"
    try:
        spec = secrets_config({"vault": {"address": openbao, "token": "env:SHIPYARD_TEST_ROOT_TOKEN"}})
        resolver = make_resolver(tmp_path, spec)
        repo = GitOpsRepo(f"http://127.0.0.1:{server.server_address[1]}/team/gitops.git", tmp_path / "clones",
                          credentials=lambda: ("x-access-token", resolver.resolve("vault:secret/git#token")))
        with pytest.raises(BackendUnavailableError) as err:
            repo.publish(lambda folder: [], "deploy", "tester")
    finally:
        del os.environ["SHIPYARD_TEST_ROOT_TOKEN"]
        server.shutdown()
        server.server_close()
    expected = "Basic " + base64.b64encode(f"x-access-token:{ROTATED}".encode()).decode()
    assert expected in seen and "refused access" in str(err.value) and ROTATED not in str(err.value)
    for path in (tmp_path / "clones").rglob("*"):
        assert not path.is_file() or ROTATED.encode() not in path.read_bytes()


def test_push_credentials_live_in_a_private_file_for_the_push_alone(tmp_path: Path) -> None:
    """build --push with deploy.push_credentials: the engine reads the login from a config.json of its own
    (0600, in a 0700 folder) that is gone when the push ends, failed or not; the user's docker config is
    never written."""
    import base64
    import stat

    from shipyard.adapters.images.engine import push_auth, registry_host

    assert registry_host("registry.example.com:5000/team/iris:3") == "registry.example.com:5000"
    assert registry_host("team/iris") == "https://index.docker.io/v1/"
    with push_auth("registry.example.com/team/iris", None) as extra:
        assert extra == {}
    with pytest.raises(RuntimeError), push_auth("registry.example.com/team/iris", ("robot", ROTATED)) as extra:
        folder, path = Path(extra["DOCKER_CONFIG"]), Path(extra["REGISTRY_AUTH_FILE"])
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(path.stat().st_mode) == 0o600
        auth = json.loads(path.read_text())["auths"]["registry.example.com"]["auth"]
        assert base64.b64decode(auth).decode() == f"robot:{ROTATED}"
        raise RuntimeError("the push failed")
    assert not folder.exists()


def test_stage_fingerprints_see_a_credential_as_set_or_unset() -> None:
    shown = redact_environ({"HF_TOKEN": "hf_abc", "DB_PASSWORD": "", "SEED": "3"}, keep_empty=True)
    assert shown == {"HF_TOKEN": "***", "DB_PASSWORD": "", "SEED": "3"}
