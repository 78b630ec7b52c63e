"""WireGuard keys: Curve25519 (X25519) key pairs and preshared keys, base64 like ``wg``.

Private keys are clamped the way ``wg genkey`` clamps them, so a key made here is byte for
byte the kind of key ``wg`` makes, and ``wg pubkey`` derives the same public key from it.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fedward.errors import ValidationError

KEY_BYTES = 32


def _clamp(raw: bytes) -> bytes:
    key = bytearray(raw)
    key[0] &= 248
    key[31] = (key[31] & 127) | 64
    return bytes(key)


def _decode(value: str, what: str) -> bytes:
    hint = "expected 44 base64 characters, as printed by 'wg genkey' or 'wg pubkey'"
    if not isinstance(value, str) or len(value) != 44 or not value.endswith("="):
        raise ValidationError(f"malformed {what} {value!r}", hint=hint)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationError(f"malformed {what} {value!r}", hint=hint) from exc
    if len(raw) != KEY_BYTES or base64.b64encode(raw).decode("ascii") != value:
        raise ValidationError(f"malformed {what} {value!r}", hint=hint)
    return raw


def validate_key(value: str, *, what: str = "WireGuard key") -> str:
    """Return ``value`` if it is a canonical base64 encoding of 32 bytes."""
    _decode(value, what)
    return value


def generate_private_key() -> str:
    """A fresh private key, as ``wg genkey`` prints it."""
    return base64.b64encode(_clamp(secrets.token_bytes(KEY_BYTES))).decode("ascii")


def public_key_of(private_key: str) -> str:
    """The public key of ``private_key``, as ``wg pubkey`` prints it."""
    raw = _clamp(_decode(private_key, "private key"))
    public = X25519PrivateKey.from_private_bytes(raw).public_key()
    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def generate_preshared_key() -> str:
    """A fresh preshared key, as ``wg genpsk`` prints it."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


@dataclass(frozen=True)
class KeyPair:
    private_key: str
    public_key: str


class KeySource(Protocol):
    """Where new keys come from; tests pass a deterministic one to compare golden files."""

    def key_pair(self) -> KeyPair: ...

    def preshared_key(self) -> str: ...


class RandomKeys:
    """The real key source: the operating system's random generator."""

    def key_pair(self) -> KeyPair:
        private_key = generate_private_key()
        return KeyPair(private_key, public_key_of(private_key))

    def preshared_key(self) -> str:
        return generate_preshared_key()
