"""Aliases the registry refuses: the built-in ``latest`` can never be shadowed, through any interface."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

import shipyard
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
