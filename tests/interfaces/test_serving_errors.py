"""The server's one error table: every ShipyardError class has a status, found through the MRO."""

from __future__ import annotations

from shipyard import errors
from shipyard.interfaces.serving.errors import Refused, status_of


def _all(cls: type[errors.ShipyardError]) -> list[type[errors.ShipyardError]]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in _all(direct))]


def test_every_error_class_maps_to_a_status() -> None:
    for cls in _all(errors.ShipyardError):
        assert 400 <= status_of(cls.__new__(cls)) <= 599, cls


def test_statuses_follow_the_mro() -> None:
    class UnknownTensor(errors.NotFoundError):
        pass

    assert status_of(errors.InvalidInputError("x")) == 400
    assert status_of(UnknownTensor("x")) == 404  # a subclass the table does not name gets its parent's
    assert status_of(errors.BackendUnavailableError("x")) == 503
    assert status_of(Refused(413, "too big")) == 413
    assert status_of(KeyError("bug")) == 500
