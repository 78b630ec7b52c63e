"""Additive masks in Z/2^64 from a 32-byte seed: the ChaCha20 keystream, read as uint64.

Each seed is derived for one purpose in one round (``secagg_keys``), so the fixed nonce
never repeats under one key. Masks are produced and applied a chunk at a time, so a
mask never needs memory the size of the model.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

SEED_BYTES = 32
_NONCE = bytes(16)
CHUNK = 1 << 18  # ring elements per keystream step (2 MiB)


class MaskStream:
    """The mask of one seed, read in order, one chunk after another."""

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError("a mask seed is 32 bytes")
        self._keystream = Cipher(algorithms.ChaCha20(seed, _NONCE), mode=None).encryptor()

    def next(self, count: int) -> np.ndarray:
        data = self._keystream.update(bytes(8 * count))
        return np.frombuffer(data, dtype="<u8").astype(np.uint64, copy=False)


def apply_masks(
    vector: np.ndarray, plus: list[bytes], minus: list[bytes], chunk: int = CHUNK
) -> None:
    """``vector += sum(mask(s) for s in plus) - sum(mask(s) for s in minus)`` in place."""
    flat = vector.reshape(-1)
    streams = [(MaskStream(seed), True) for seed in plus]
    streams += [(MaskStream(seed), False) for seed in minus]
    for start in range(0, flat.size, chunk):
        stop = min(start + chunk, flat.size)
        part = flat[start:stop]
        for stream, add in streams:
            if add:
                part += stream.next(stop - start)
            else:
                part -= stream.next(stop - start)
