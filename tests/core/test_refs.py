from __future__ import annotations

import pytest

from shipyard.core.registry.refs import MAX_VERSION, ModelRef, check_alias, check_version
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


@pytest.mark.parametrize("text", ["iris@99999999999999999999999", f"iris@{2**31}", "iris@" + "9" * 5000,
                                  "iris@" + "0" * 5000 + "1" * 11])
def test_a_version_too_large_to_store_is_refused_not_an_overflow(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match=f"versions run from 1 to {MAX_VERSION}") as exc:
        ModelRef.parse(text)
    assert len(str(exc.value).splitlines()) == 1 and len(str(exc.value)) < 200


def test_the_largest_version_and_leading_zeros_still_parse() -> None:
    assert ModelRef.parse(f"iris@{MAX_VERSION}").version == 2**31 - 1
    assert ModelRef.parse("iris@007").version == 7


@pytest.mark.parametrize("version", [0, -1, 2**31, 10**30, True, "3", 1.0])
def test_check_version_refuses_what_cannot_be_stored(version: object) -> None:
    with pytest.raises(InvalidReferenceError, match="versions run from 1 to"):
        check_version(version)
    assert check_version(MAX_VERSION) == MAX_VERSION


def test_a_final_newline_is_not_part_of_any_name() -> None:
    """`$` matches before a final newline: an alias 'prod\\n' was stored, listed, and unreachable by any ref."""
    from shipyard.core.artifacts.digest import Digest
    from shipyard.core.project.loader import parse_config
    from shipyard.core.registry.refs import check_model_name, check_new_alias
    from shipyard.errors import ConfigError, InvalidInputError

    for check, text in ((check_alias, "prod\n"), (check_new_alias, "prod\n"), (check_model_name, "iris\n")):
        with pytest.raises(InvalidReferenceError):
            check(text)
    with pytest.raises(InvalidInputError):
        Digest("0" * 64 + "\n")
    with pytest.raises(ConfigError):
        parse_config('version: 1\nstages:\n  "train\\n":\n    cmd: echo hi\n')


@pytest.mark.parametrize(("text", "expected"), [
    ("models:/iris/3", ModelRef("iris", version=3)),
    ("models:/iris@champion", ModelRef("iris", alias="champion")),
    ("models:/iris/latest", ModelRef("iris")),
    ("models:/iris", ModelRef("iris")),
    ("models:/iris/Production", ModelRef("iris", alias="production")),  # the alias transition_..._stage moves
    ("runs:/0123abcd/model", ModelRef("", run_id="0123abcd", path="model")),
    ("runs:/0123abcd/sub/model/", ModelRef("", run_id="0123abcd", path="sub/model")),
])
def test_mlflow_uris_are_references(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected


@pytest.mark.parametrize("text", ["models:/", "models://", "models:/iris/Archived", "models:/iris/1/2",
                                  "models:/../x/1", "runs:/abc", "runs:/abc/", "runs:/../model",
                                  "runs:/abc/../../x", "runs:/abc/./m", "runs:/a b/model",
                                  "runs:/" + "a" * 2000 + "/m"])
def test_malformed_uris_are_refused_with_the_forms_that_work(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match=r"models:/NAME/VERSION|runs:/RUN_ID/PATH|NAME@VERSION") as exc:
        ModelRef.parse(text)
    assert len(str(exc.value)) < 300
