"""Aliases the registry refuses: the built-in ``latest`` can never be shadowed, through any interface."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

import shipyard
from shipyard.core.artifacts.digest import Digest
from shipyard.errors import InvalidReferenceError
from shipyard.wiring import Services


def _two_versions(services: Services, tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    shipyard.save_model(DummyClassifier().fit([[0], [1]], [0, 1]), folder)
    services.registry.register("iris", folder)
    services.registry.register("iris", folder)


@pytest.mark.parametrize("alias", ["latest", "Latest", "LATEST"])
def test_latest_is_reserved_and_means_the_newest_version(services: Services, tmp_path: Path, alias: str) -> None:
    _two_versions(services, tmp_path)
    with pytest.raises(InvalidReferenceError, match="is reserved") as exc:
        services.registry.set_alias("iris", alias, 1)
    assert len(str(exc.value).splitlines()) == 1
    assert services.registry.resolve(f"iris@{alias}").version == 2  # the newest, as plain "iris"
    assert not [e for e in services.registry.history("iris") if e.action == "alias.set"]


def test_a_numeric_alias_is_refused(services: Services, tmp_path: Path) -> None:
    _two_versions(services, tmp_path)
    with pytest.raises(InvalidReferenceError, match="numbers name versions"):
        services.registry.set_alias("iris", "1", 2)


def test_a_damaged_check_record_is_left_out_of_results_and_the_rest_still_read(services: Services,
                                                                               tmp_path: Path) -> None:
    """A check's record object that no longer hashes to its name (a damaged store) is skipped, not raised."""
    folder = tmp_path / "saved"
    shipyard.save_model(DummyClassifier().fit([[0], [1]], [0, 1]), folder)
    mv = services.registry.register("m", folder)
    damaged = services.registry.record_result(mv, "verify", {"status": "pass", "n": 1}, "pass")
    services.registry.record_result(mv, "verify", {"status": "fail", "n": 2}, "fail")
    path = services.store.local_path(Digest.parse(damaged.new or ""))  # type: ignore[attr-defined]
    path.chmod(0o644)
    path.write_bytes(b'{"status": "pass", "n": 3}')
    assert [body["n"] for _, body in services.registry.results(mv, "verify")] == [2]
