"""Per-round keys of secure aggregation, and everything derived from them.

Each node makes, for one round of one experiment, two X25519 key pairs and a self-mask
seed (Bonawitz et al. 2017, "AdvertiseKeys"):

- ``c`` (channel): X25519 + HKDF give a key per (sender, recipient) that seals the
  Shamir shares a node sends to another through the researcher (ChaCha20-Poly1305);
- ``s`` (mask): X25519 + HKDF give the seed of the pairwise mask two nodes share;
- ``b``: 32 random bytes, the seed of the node's self-mask; its SHA-256 commitment is
  published so that the researcher can check the seed it reconstructs.

Every derivation and every sealed share is bound to the ``SessionContext``: researcher,
experiment, round, cohort, threshold and encoding. A key, a share or an advert from
another round, experiment or cohort derives other keys and fails to open, which is how
replays are detected.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fedward.errors import IntegrityError
from fedward.privacy.masks import SEED_BYTES
from fedward.privacy.shamir import SHARE_BYTES

KEY_BYTES = 32
_NONCE_BYTES = 12


@dataclass(frozen=True)
class SessionContext:
    """What one secure-aggregation round is: every node and the researcher agree on it."""

    researcher_id: str
    experiment_id: str
    round_index: int
    cohort: tuple[str, ...]  # the nodes asked, sorted
    threshold: int
    fraction_bits: int

    def encoded(self) -> bytes:
        return json.dumps(
            [
                "fedward-secagg-v1",
                self.researcher_id,
                self.experiment_id,
                self.round_index,
                list(self.cohort),
                self.threshold,
                self.fraction_bits,
            ],
            separators=(",", ":"),
        ).encode()

    def share_x(self, node_id: str) -> int:
        """A node's Shamir evaluation point: its position in the cohort, plus one."""
        return self.cohort.index(node_id) + 1


def _hkdf(secret: bytes, purpose: str, context: SessionContext, *parties: str) -> bytes:
    info = json.dumps([purpose, *parties], separators=(",", ":")).encode() + context.encoded()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def _exchange(private: X25519PrivateKey, peer_public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer_public))
    except ValueError as exc:  # a low-order point: not a key anyone honest sends
        raise IntegrityError("a secure-aggregation public key is invalid") from exc


def public_bytes(private: X25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def private_bytes(private: X25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

    return private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def self_mask_commitment(context: SessionContext, node_id: str, seed: bytes) -> bytes:
    return hashlib.sha256(
        b"fedward-secagg-self-mask" + context.encoded() + node_id.encode() + seed
    ).digest()


@dataclass(frozen=True)
class RoundKeys:
    """One node's secrets for one round. Never written to disk, never sent in clear."""

    channel: X25519PrivateKey
    mask: X25519PrivateKey
    self_mask_seed: bytes

    @classmethod
    def generate(cls) -> RoundKeys:
        return cls(
            X25519PrivateKey.generate(),
            X25519PrivateKey.generate(),
            secrets.token_bytes(SEED_BYTES),
        )

    @property
    def channel_public(self) -> bytes:
        return public_bytes(self.channel)

    @property
    def mask_public(self) -> bytes:
        return public_bytes(self.mask)


def pair_mask_seed(
    mask_private: X25519PrivateKey,
    peer_mask_public: bytes,
    context: SessionContext,
    node_a: str,
    node_b: str,
) -> bytes:
    """The seed of the mask ``node_a`` and ``node_b`` share (the same from either side)."""
    low, high = sorted((node_a, node_b))
    return _hkdf(_exchange(mask_private, peer_mask_public), "pair-mask", context, low, high)


def mask_public_from_private(private: bytes) -> bytes:
    return public_bytes(X25519PrivateKey.from_private_bytes(private))


def mask_private_from_bytes(private: bytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(private)


def _channel_key(
    channel_private: X25519PrivateKey,
    peer_channel_public: bytes,
    context: SessionContext,
    sender: str,
    recipient: str,
) -> bytes:
    # Sender and recipient in order: each direction has its own key.
    secret = _exchange(channel_private, peer_channel_public)
    return _hkdf(secret, "share-channel", context, sender, recipient)


def _aad(context: SessionContext, sender: str, recipient: str) -> bytes:
    return context.encoded() + json.dumps([sender, recipient]).encode()


def seal_shares(
    channel_private: X25519PrivateKey,
    recipient_channel_public: bytes,
    context: SessionContext,
    sender: str,
    recipient: str,
    self_mask_share: bytes,
    mask_key_share: bytes,
) -> bytes:
    """The two shares ``sender`` gives ``recipient``, readable by ``recipient`` only."""
    key = _channel_key(channel_private, recipient_channel_public, context, sender, recipient)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = ChaCha20Poly1305(key).encrypt(
        nonce, self_mask_share + mask_key_share, _aad(context, sender, recipient)
    )
    return nonce + sealed


def open_shares(
    channel_private: X25519PrivateKey,
    sender_channel_public: bytes,
    context: SessionContext,
    sender: str,
    recipient: str,
    sealed: bytes,
) -> tuple[bytes, bytes]:
    """(self-mask share, mask-key share) sealed by ``sender``; IntegrityError if they were
    not sealed by the holder of ``sender``'s advertised key for exactly this round."""
    key = _channel_key(channel_private, sender_channel_public, context, sender, recipient)
    try:
        plain = ChaCha20Poly1305(key).decrypt(
            sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _aad(context, sender, recipient)
        )
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError(
            f"the shares said to come from {sender} do not open with {sender}'s advertised "
            "key for this round: substituted or replayed"
        ) from exc
    if len(plain) != 2 * SHARE_BYTES:
        raise IntegrityError(f"the shares from {sender} have the wrong size")
    return plain[:SHARE_BYTES], plain[SHARE_BYTES:]
