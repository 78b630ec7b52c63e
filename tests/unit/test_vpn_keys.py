"""Keys made here and keys made by ``wg`` are interchangeable."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from fedward.errors import ValidationError
from fedward.vpn.keys import (
    RandomKeys,
    generate_preshared_key,
    generate_private_key,
    public_key_of,
    validate_key,
)

WG = shutil.which("wg")


def _wg(*args: str, stdin: str | None = None) -> str:
    assert WG is not None, "the 'wg' tool (wireguard-tools) is needed for these tests"
    done = subprocess.run([WG, *args], input=stdin, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_public_key_matches_wg_pubkey_for_a_key_made_by_wg_genkey() -> None:
    for _ in range(5):
        private = _wg("genkey")
        assert public_key_of(private) == _wg("pubkey", stdin=private + "\n")


def test_wg_pubkey_accepts_our_private_keys_and_agrees_with_us() -> None:
    for _ in range(5):
        private = generate_private_key()
        assert _wg("pubkey", stdin=private + "\n") == public_key_of(private)


def test_private_keys_are_clamped_like_wg_genkey() -> None:
    import base64

    raw = base64.b64decode(generate_private_key())
    assert raw[0] & 7 == 0
    assert raw[31] & 128 == 0
    assert raw[31] & 64 == 64


def test_keys_from_wg_genpsk_and_ours_have_the_same_form() -> None:
    assert validate_key(_wg("genpsk"))
    assert validate_key(generate_preshared_key())


def test_random_key_pairs_are_consistent_and_distinct() -> None:
    first, second = RandomKeys().key_pair(), RandomKeys().key_pair()
    assert public_key_of(first.private_key) == first.public_key
    assert first != second


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not a key",
        "A" * 44,  # no padding
        "AAAA" * 10 + "AA==",  # 31 bytes
        "$(id)" + "A" * 38 + "=",
        "4OIHVWcDq5+CaDKrQ3G3QAuVnr41ONVFBto1ylBroZh=",  # non-canonical padding bits
    ],
)
def test_malformed_keys_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="malformed"):
        validate_key(bad)
