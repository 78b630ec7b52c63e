from __future__ import annotations

import pytest

from fedward.core.ids import new_id, validate_id, validate_sha256
from fedward.errors import ValidationError


@pytest.mark.parametrize("value", ["a", "node-1", "Node_2", "x" * 64, "0", "_x", "a-"])
def test_valid_ids_are_returned_unchanged(value: str) -> None:
    assert validate_id(value) == value


OPTION_LIKE = ["-x", "--help", "-"]  # on a command line these would read as options


@pytest.mark.parametrize(
    "value",
    [
        "",
        "x" * 65,
        "../x",
        "a/b",
        "a b",
        "a+b",
        "a#b",
        "a.b",
        "é",
        "a\n",
        None,
        12,
        b"abc",
        *OPTION_LIKE,
    ],
)
def test_invalid_ids_are_refused_with_the_kind_and_the_value_named(value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_id(value, kind="node id")
    assert "node id" in str(caught.value)
    assert repr(value) in str(caught.value)
    assert caught.value.hint is not None and "64" in caught.value.hint


def test_a_sha256_must_be_64_lowercase_hex_digits() -> None:
    good = "0123456789abcdef" * 4
    assert validate_sha256(good) == good
    for bad in [good.upper(), good[:-1], good + "0", "g" * 64, None]:
        with pytest.raises(ValidationError, match="blob id"):
            validate_sha256(bad)


def test_new_ids_are_valid_fresh_and_carry_their_prefix() -> None:
    ids = {new_id("exp") for _ in range(100)}
    assert len(ids) == 100
    assert all(validate_id(i) == i and i.startswith("exp-") for i in ids)


def test_new_id_refuses_a_prefix_that_would_make_an_invalid_id() -> None:
    with pytest.raises(ValidationError):
        new_id("bad/prefix")
