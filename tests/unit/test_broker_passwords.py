"""Mosquitto ``$7$`` password lines: hashing, verifying, reading, writing."""

from __future__ import annotations

import base64
import hashlib

import pytest

from fedward.broker.passwords import (
    hash_iterations,
    hash_password,
    parse_password_file,
    render_password_file,
    verify_password,
)
from fedward.errors import ConfigError


def test_hash_is_pbkdf2_sha512_in_mosquitto_layout() -> None:
    encoded = hash_password("secret", iterations=1234, salt_source=lambda n: b"s" * n)
    algorithm, iterations, salt, key = encoded.split("$")[1:]
    assert (algorithm, iterations) == ("7", "1234")
    assert base64.b64decode(salt) == b"s" * 12
    expected = hashlib.pbkdf2_hmac("sha512", b"secret", b"s" * 12, 1234, 64)
    assert base64.b64decode(key) == expected


def test_a_hash_written_by_mosquitto_passwd_2_0_verifies() -> None:
    # `mosquitto_passwd -b pw alice secret` from Mosquitto 2.0.11
    encoded = (
        "$7$101$cFPQAxyxOkCNlD4e$L5+NwXhUpSTInI2fj+1GmUSXYuXVX26nuthE9uEDNM3RAZn773hxn10Y"
        "n0S+lmr75MFtvqAB9h064DIL2tG/sw=="
    )
    assert verify_password("secret", encoded)
    assert not verify_password("Secret", encoded)


def test_each_hash_has_its_own_salt() -> None:
    assert hash_password("same", iterations=10) != hash_password("same", iterations=10)


@pytest.mark.parametrize(
    "encoded",
    [
        "plaintext",
        "$6$abc$def",
        "$7$x$AAAA$AAAA",
        "$7$10$!!!$AAAA",
        "$7$10$AAAA$AAAA",
        "$7$0$AA==$" + "A" * 88,
    ],
)
def test_other_formats_never_verify(encoded: str) -> None:
    assert not verify_password("anything", encoded)
    assert hash_iterations(encoded) is None


def test_password_file_round_trip_is_sorted_by_user() -> None:
    hashes = {"zoe": hash_password("z", iterations=10), "adam": hash_password("a", iterations=10)}
    text = render_password_file(hashes)
    assert text.splitlines()[0].startswith("adam:$7$10$")
    assert parse_password_file(text) == hashes


def test_plaintext_password_file_is_refused_with_a_hint() -> None:
    with pytest.raises(ConfigError, match="fedward broker config"):
        parse_password_file("alice:secret\n")


def test_username_with_a_colon_cannot_be_written() -> None:
    with pytest.raises(ConfigError):
        render_password_file({"a:b": hash_password("x", iterations=10)})


def test_zero_iterations_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        hash_password("x", iterations=0)
