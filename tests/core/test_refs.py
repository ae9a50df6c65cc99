from __future__ import annotations

import pytest

from shipyard.core.registry.refs import ModelRef, check_alias
from shipyard.errors import InvalidReferenceError


@pytest.mark.parametrize(("text", "expected"), [
    ("iris", ModelRef("iris")),
    ("iris@3", ModelRef("iris", version=3)),
    ("iris@production", ModelRef("iris", alias="production")),
    ("my-model.v2@staging", ModelRef("my-model.v2", alias="staging")),
])
def test_valid_references(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected
    assert str(ModelRef.parse(text)) == text


@pytest.mark.parametrize("text", ["iris@@", "iris@", "@3", "iris@0", "iris@3@4", "", "  ", "ir is@1",
                                  "iris@-1", "iris@prod uction", "../x@1"])
def test_malformed_references_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match=r"NAME@VERSION|versions start at 1|empty"):
        ModelRef.parse(text)


def test_an_alias_cannot_look_like_a_version() -> None:
    with pytest.raises(InvalidReferenceError):
        check_alias("3")
