"""The researcher's side of secure aggregation: sum the masked vectors, then unmask the sum.

The researcher never holds an unmasked vector of one node. It adds each masked vector
into one running sum in Z/2^64 (exact, so the order of arrival does not matter) and,
once at least ``t`` nodes answered the unmasking step, reconstructs

- the self-mask seed of each survivor (U3), checked against its published commitment,
- the mask private key of each node that sent shares but no masked vector (U2 - U3),
  checked against its advertised public key,

and removes from the sum the survivors' self-masks and the pairwise masks survivors
shared with the nodes that dropped. What is left is the sum of the survivors' encoded
vectors. With fewer than ``t`` answers nothing can be reconstructed: the round fails
and the sum stays masked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from fedward.errors import FederationError, IntegrityError, ValidationError
from fedward.privacy import shamir
from fedward.privacy.masks import SEED_BYTES, apply_masks
from fedward.privacy.secagg_keys import (
    KEY_BYTES,
    SessionContext,
    mask_private_from_bytes,
    mask_public_from_private,
    pair_mask_seed,
    self_mask_commitment,
)
from fedward.privacy.secagg_participant import Advert, Reveal, check_threshold


class SecAggUnmasking:
    def __init__(
        self,
        context: SessionContext,
        adverts: Mapping[str, Advert],
        mask_senders: Sequence[str],
        vector_size: int,
    ) -> None:
        """``adverts``: U1's public keys; ``mask_senders``: U2 (who sent shares)."""
        check_threshold(context.threshold, len(context.cohort))
        if not set(mask_senders) <= set(adverts):
            raise ValidationError("every node that sent shares must have advertised keys")
        self.context = context
        self._adverts = dict(adverts)
        self._mask_senders = tuple(sorted(mask_senders))
        self._sum = np.zeros(vector_size, dtype=np.uint64)
        self._survivors: list[str] = []

    @property
    def survivors(self) -> list[str]:
        """U3: the nodes whose masked vector is in the sum."""
        return sorted(self._survivors)

    def add_masked(self, node_id: str, vector: np.ndarray) -> None:
        if node_id not in self._mask_senders or node_id in self._survivors:
            raise ValidationError(f"no masked vector expected from {node_id}")
        if vector.dtype != np.uint64 or vector.shape != self._sum.shape:
            raise ValidationError(f"the masked vector of {node_id} has the wrong shape or type")
        self._sum += vector
        self._survivors.append(node_id)

    def unmask(self, reveals: Mapping[str, Reveal]) -> np.ndarray:
        """The sum of the survivors' encoded vectors, from the reveals of at least t nodes."""
        threshold = self.context.threshold
        holders = sorted(h for h in reveals if h in self._survivors)
        if len(holders) < threshold:
            raise FederationError(
                f"only {len(holders)} node(s) answered the unmasking step, fewer than the "
                f"threshold of {threshold}: the sum stays masked and nothing is revealed"
            )
        if len(self._survivors) < threshold:
            raise FederationError(
                f"only {len(self._survivors)} masked update(s) arrived, fewer than the "
                f"threshold of {threshold}"
            )
        holders = holders[:threshold]
        survivors = self.survivors
        dropped = [n for n in self._mask_senders if n not in survivors]
        plus: list[bytes] = []
        minus: list[bytes] = []
        for node_id in survivors:
            seed = self._combine(reveals, holders, node_id, "self-mask", SEED_BYTES)
            expected = self._adverts[node_id].self_mask_commitment
            if self_mask_commitment(self.context, node_id, seed) != expected:
                raise IntegrityError(f"the self-mask shares of {node_id} do not agree")
            minus.append(seed)
        for gone in dropped:
            private = self._combine(reveals, holders, gone, "mask-key", KEY_BYTES)
            if mask_public_from_private(private) != self._adverts[gone].mask_public:
                raise IntegrityError(f"the mask-key shares of {gone} do not agree")
            key = mask_private_from_bytes(private)
            for node_id in survivors:
                seed = pair_mask_seed(
                    key, self._adverts[node_id].mask_public, self.context, gone, node_id
                )
                # The survivor added +mask when it sorts first; take back what it added.
                (minus if node_id < gone else plus).append(seed)
        result = self._sum.copy()
        apply_masks(result, plus, minus)
        return result

    def _combine(
        self, reveals: Mapping[str, Reveal], holders: list[str], owner: str, kind: str, size: int
    ) -> bytes:
        shares: dict[int, bytes] = {}
        for holder in holders:
            reveal = reveals[holder]
            table = reveal.self_mask_shares if kind == "self-mask" else reveal.mask_key_shares
            if owner not in table:
                raise IntegrityError(f"{holder} did not reveal its {kind} share of {owner}")
            shares[self.context.share_x(holder)] = table[owner]
        try:
            return shamir.combine(shares, size)
        except ValidationError as exc:
            raise IntegrityError(f"the {kind} shares of {owner} do not agree: {exc}") from exc
