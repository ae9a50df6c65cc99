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


def test_status_is_one_of_the_run_statuses_in_any_case() -> None:
    assert parse_filter("status = 'KILLED'") == (Condition("attr", "status", "=", "killed"),)
    assert parse_filter("attributes.status != 'FINISHED' and attributes.run_name = 'fit'") == (
        Condition("attr", "status", "!=", "finished"), Condition("attr", "name", "=", "fit"))
    with pytest.raises(InvalidInputError, match="unknown run status 'bogus' in filter: use one of "
                                                "running, finished, failed, killed"):
        parse_filter("status = 'bogus'")
    with pytest.raises(InvalidInputError, match="unknown run status 'done'"):
        parse_filter("attributes.status = 'done'")
