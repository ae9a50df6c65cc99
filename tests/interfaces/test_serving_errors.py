"""The server's one error table: every ShipyardError class has a status, found through the MRO."""

from __future__ import annotations

from shipyard import errors
from shipyard.interfaces.serving.errors import STATUS, DoesNotFit, Refused, TooLarge, status_of


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
    assert status_of(TooLarge("too big")) == 413 and status_of(DoesNotFit("3 features, takes 4")) == 422
    assert status_of(KeyError("bug")) == 500


def test_every_refusal_of_the_server_has_its_own_status() -> None:
    refusals = Refused.__subclasses__()
    assert refusals and all(cls in STATUS for cls in refusals)
    assert len({STATUS[cls] for cls in refusals}) == len(refusals)
