"""Shamir secret sharing (t of n) over the prime field GF(2^521 - 1).

The field is larger than any 32-byte secret, so a secret is one field element. Shares
are points ``(x, p(x))`` of a random polynomial of degree ``t - 1`` with ``p(0)`` the
secret; ``x`` is the holder's position in the cohort plus one (never 0). Any ``t``
shares give the secret back (Lagrange interpolation at 0); fewer reveal nothing about
it. The coefficients come from ``secrets``, the operating system's CSPRNG.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

from fedward.errors import ValidationError

PRIME = 2**521 - 1
SHARE_BYTES = 66  # 521 bits


def split(secret: bytes, xs: list[int], threshold: int) -> dict[int, bytes]:
    """One share per ``x`` in ``xs``; any ``threshold`` of them recover ``secret``."""
    if not 1 <= threshold <= len(xs):
        raise ValidationError(f"threshold {threshold} must be between 1 and {len(xs)}")
    if len(secret) > 64 or len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise ValidationError("invalid secret-sharing arguments")
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [secrets.randbelow(PRIME) for _ in range(threshold - 1)]
    shares: dict[int, bytes] = {}
    for x in xs:
        y = 0
        for coefficient in reversed(coefficients):  # Horner
            y = (y * x + coefficient) % PRIME
        shares[x] = y.to_bytes(SHARE_BYTES, "big")
    return shares


def combine(shares: Mapping[int, bytes], secret_bytes: int) -> bytes:
    """The secret from shares ``{x: y}`` (exactly the ones given are used)."""
    points = [(x, int.from_bytes(y, "big")) for x, y in shares.items()]
    if not points or len({x for x, _ in points}) != len(points):
        raise ValidationError("secret reconstruction needs distinct shares")
    if any(not 0 < x < PRIME or not 0 <= y < PRIME for x, y in points):
        raise ValidationError("a share is out of the field")
    secret = 0
    for i, (x_i, y_i) in enumerate(points):
        numerator, denominator = 1, 1
        for j, (x_j, _) in enumerate(points):
            if i != j:
                numerator = numerator * (-x_j) % PRIME
                denominator = denominator * (x_i - x_j) % PRIME
        secret = (secret + y_i * numerator * pow(denominator, -1, PRIME)) % PRIME
    if secret >= 2 ** (8 * secret_bytes):
        raise ValidationError("the shares do not combine to a secret of the expected size")
    return secret.to_bytes(secret_bytes, "big")
