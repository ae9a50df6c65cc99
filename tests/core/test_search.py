from __future__ import annotations

import pytest

from shipyard.core.lineage.search import Condition, parse_filter
from shipyard.errors import InvalidInputError


def test_parses_conditions_joined_with_and() -> None:
    conds = parse_filter("metrics.accuracy >= 0.9 AND params.model = 'lr' and status != \"failed\"")
    assert conds == (
        Condition("metrics", "accuracy", ">=", 0.9),
        Condition("params", "model", "=", "lr"),
        Condition("attr", "status", "!=", "failed"),
    )
    assert parse_filter("") == ()
    assert parse_filter("metrics.loss < 1e-3") == (Condition("metrics", "loss", "<", 0.001),)


@pytest.mark.parametrize("bad", ["accuracy > 0.9", "metrics.acc > 'high'", "params.x > 3",
                                 "metrics.acc >", "metrics.acc > 0.9 or metrics.b < 1", "status > 'x'"])
def test_unreadable_filters_say_how_to_write_them(bad: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_filter(bad)
