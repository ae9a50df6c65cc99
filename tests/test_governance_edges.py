"""The ways around the gates an attacker tried: every manual alias move (the Python API, a rollout's --alias, an
environment's own alias name) asks the policy; verify loads only a signed version under require_signed; a secret
database URL is never echoed; credential-looking variable names are recognized."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.core.deploy.rollout import State
from shipyard.core.secrets import looks_secret
from shipyard.errors import ConfigError, PolicyDeniedError, SignatureError
from shipyard.interfaces.api.client import Client
from shipyard.interfaces.cli.rollout import Target, finish
from shipyard.wiring import Services, build, open_metadata
from shipyard.wiring.policy import init_bundle
from tests.test_promote import bare, daemon, make_project, saved

__all__ = ["daemon", "saved"]


@pytest.fixture
def svc(tmp_path: Path, daemon: tuple[str, Path], saved: Path) -> Iterator[Services]:
    """A project with the default bundle whose production environment's alias is `prod`, and m@1, m@2."""
    services = build(make_project(tmp_path / "proj", bare(daemon)), tmp_path / "proj")
    init_bundle(services.settings.project_root)
    services.registry.register("m", saved)
    services.registry.register("m", saved)
    yield services
    services.close()


def test_the_python_api_moves_a_protected_alias_only_when_the_policy_allows(svc: Services) -> None:
    client = Client(svc.settings.project_root, tracking_uri=svc.settings.db_url)
    try:
        for alias in ("production", "prod"):  # prod: the alias deploy environment production moves
            with pytest.raises(PolicyDeniedError, match=r"^policy denied alias m@2 to production"):
                client.set_registered_model_alias("m", alias, 2)
        assert svc.registry.resolve("m@2").aliases == ()
        client.set_registered_model_alias("m", "candidate", 2)  # not protected: moves freely
    finally:
        client.close()
    assert svc.registry.resolve("m@candidate").version == 2


def test_a_rollout_that_passes_moves_a_protected_alias_only_through_the_policy(svc: Services) -> None:
    new, stable = svc.registry.resolve("m@2"), svc.registry.resolve("m@1")
    passed = State(step=2, weight=100, status="promoted", why="every step passed")
    with pytest.raises(PolicyDeniedError, match=r"^m@2 passed every step .* but policy denied alias m@2"):
        finish(svc, new, stable, passed, Target("production"), {})
    assert svc.registry.resolve("m@2").aliases == ()
    verdicts = [e for e in svc.registry.history("m") if e.action == "rollout"]
    assert len(verdicts) == 1  # the verdict is recorded all the same
    summary, _ = finish(svc, new, stable, passed, Target("candidate"), {})
    assert summary.endswith("m@candidate -> m@2") and svc.registry.resolve("m@candidate").version == 2


def test_verify_refuses_an_unsigned_version_under_require_signed(svc: Services) -> None:
    from shipyard.wiring import VerifyRequest, verify_version

    root = svc.settings.project_root
    with open(root / "shipyard.yaml", "a") as f:
        f.write("signing: {trusted_keys: [keys/none.pub], require_signed: true}\n")
    with pytest.raises(SignatureError, match=r"^m@1 is not loaded: .*not signed"):
        verify_version(svc, "m@1", VerifyRequest(current=True))
    assert not [e for e in svc.registry.history("m") if e.action == "verify"]  # no pass recorded


def test_a_database_url_from_a_reference_is_never_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    from shipyard.config import Settings

    home = tmp_path / ".shipyard"
    home.mkdir()
    base = Settings(home=home, db_url="env:SHIPYARD_TEST_DB", store_path=home / "objects", actor="a", root=tmp_path)
    for bad in ("postgresql//user:Zq9Pass@h/db", "postgresql://user:Zq9Pass@h:xx/db"):
        monkeypatch.setenv("SHIPYARD_TEST_DB", bad)
        with pytest.raises(ConfigError) as caught:
            open_metadata(replace(base))
        assert "Zq9Pass" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("name", "secret"), [
    ("MYSQL_PWD", True), ("AZURE_STORAGE_CONNECTION_STRING", True), ("GH_PAT", True), ("DB_PASS", True),
    ("SLACK_WEBHOOK_URL", True), ("GITHUB_TOKEN", True), ("PATH", False), ("PYTHONPATH", False),
    ("PASSES", False), ("COMPASS_HOME", False), ("SHIPYARD_HOME", False),
])
def test_credential_looking_names(name: str, secret: bool) -> None:
    assert looks_secret(name, "value") is secret
