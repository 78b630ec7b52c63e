"""One node's side of secure aggregation (SecAgg, Bonawitz et al. 2017), without I/O.

The rounds, with the cohort ``C`` (the nodes asked), ``U1 ⊇ U2 ⊇ U3`` chosen by the
researcher from who answered, and ``t`` the threshold:

1. ``advert()``: fresh keys (``secagg_keys``); the daemon publishes them on the node's
   own advert topic, which only it may write (broker ACL).
2. ``seal_shares(adverts of U1)``: Shamir shares (t of |U1|) of the self-mask seed and
   of the mask private key, one pair per member of U1, each sealed for its holder.
3. ``open_shares(sealed, U2)``: the shares other nodes sealed for this one; ``U2`` is who
   sent shares, and the pairwise masks are agreed with exactly them.
   ``mask(vector)``: adds the self-mask and, for each other ``v`` in U2, ``+mask(s_uv)``
   when ``u < v`` and ``-mask(s_uv)`` otherwise, so pairwise masks cancel in the sum.
4. ``reveal(U3)``: for each survivor its self-mask share, for each node of ``U2 - U3``
   its mask-key share. Never both for one node, and only once per round: a researcher
   who told different nodes different survivor sets would need ``2t`` answers to get
   both secrets of one node, and ``t > |C| / 2`` makes that impossible
   (``check_threshold``).

Every refusal is a ``ValidationError`` (the researcher broke a rule) or an
``IntegrityError`` (something did not open with the key it claims).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedward.errors import IntegrityError, ValidationError
from fedward.privacy import shamir
from fedward.privacy.masks import apply_masks
from fedward.privacy.secagg_keys import (
    KEY_BYTES,
    RoundKeys,
    SessionContext,
    open_shares,
    pair_mask_seed,
    private_bytes,
    seal_shares,
    self_mask_commitment,
)


@dataclass(frozen=True)
class Advert:
    """A node's public keys for one round, as published on its advert topic."""

    node_id: str
    channel_public: bytes
    mask_public: bytes
    self_mask_commitment: bytes


@dataclass(frozen=True)
class Reveal:
    """What a node discloses in the unmasking step, by the node each share belongs to."""

    self_mask_shares: dict[str, bytes]  # of survivors
    mask_key_shares: dict[str, bytes]  # of nodes that dropped after sending shares


def check_threshold(threshold: int, cohort_size: int) -> None:
    """A threshold must be a strict majority of the cohort (see the module docstring)."""
    if cohort_size < 2:
        raise ValidationError("secure aggregation needs at least 2 nodes in a round")
    if not cohort_size // 2 < threshold <= cohort_size:
        raise ValidationError(
            f"secure-aggregation threshold {threshold} must be more than half of the "
            f"{cohort_size} nodes of the round and at most {cohort_size}",
            hint="below a majority, a researcher who lies about who dropped out could "
            "unmask one node's update",
        )


def _check_subset(
    name: str, members: Sequence[str], within: Sequence[str], node_id: str, minimum: int
) -> tuple[str, ...]:
    chosen = tuple(sorted(set(members)))
    if len(chosen) != len(members):
        raise ValidationError(f"{name} names a node twice")
    if not set(chosen) <= set(within):
        raise ValidationError(f"{name} names nodes outside the earlier step's set")
    if node_id not in chosen:
        raise ValidationError(f"{name} does not include this node ({node_id})")
    if len(chosen) < minimum:
        raise ValidationError(
            f"{name} has {len(chosen)} node(s), fewer than the {minimum} this round needs"
        )
    return chosen


class SecAggParticipant:
    def __init__(self, context: SessionContext, node_id: str, *, min_survivors: int = 1) -> None:
        """``min_survivors``: the node's own floor on how many updates its update may be
        revealed summed with (k-anonymity); the threshold applies anyway."""
        check_threshold(context.threshold, len(context.cohort))
        if node_id not in context.cohort:
            raise ValidationError(f"node {node_id} is not in the cohort of this round")
        self.context = context
        self.node_id = node_id
        self.min_survivors = max(min_survivors, context.threshold)
        self._keys = RoundKeys.generate()
        self._adverts: dict[str, Advert] = {}
        self._held: dict[str, tuple[bytes, bytes]] = {}  # sender -> (self-mask, mask-key) share
        self._mask_senders: tuple[str, ...] = ()
        self._revealed = False

    def advert(self) -> Advert:
        keys = self._keys
        return Advert(
            self.node_id,
            keys.channel_public,
            keys.mask_public,
            self_mask_commitment(self.context, self.node_id, keys.self_mask_seed),
        )

    def seal_shares(self, adverts: Mapping[str, Advert]) -> dict[str, bytes]:
        """Step 2: the sealed shares for each member of U1 (the nodes of ``adverts``)."""
        if self._adverts:
            raise ValidationError("this node already sent its shares for this round")
        members = _check_subset(
            "the key-sharing set",
            list(adverts),
            self.context.cohort,
            self.node_id,
            self.context.threshold,
        )
        if adverts[self.node_id] != self.advert():
            raise IntegrityError("the advert given for this node is not the one it published")
        for node_id, advert in adverts.items():
            if advert.node_id != node_id:
                raise IntegrityError(f"the advert filed under {node_id} is {advert.node_id}'s")
        xs = {node_id: self.context.share_x(node_id) for node_id in members}
        threshold = self.context.threshold
        seed_shares = shamir.split(self._keys.self_mask_seed, list(xs.values()), threshold)
        key_shares = shamir.split(private_bytes(self._keys.mask), list(xs.values()), threshold)
        self._adverts = dict(adverts)
        return {
            holder: seal_shares(
                self._keys.channel,
                adverts[holder].channel_public,
                self.context,
                self.node_id,
                holder,
                seed_shares[xs[holder]],
                key_shares[xs[holder]],
            )
            for holder in members
        }

    def open_shares(self, sealed_by_sender: Mapping[str, bytes]) -> None:
        """Step 3a: keep the shares sealed for this node; the senders are U2."""
        if not self._adverts:
            raise ValidationError("masked input asked before this node shared its keys")
        if self._mask_senders:
            raise ValidationError("this node already received its shares for this round")
        senders = _check_subset(
            "the share senders",
            list(sealed_by_sender),
            list(self._adverts),
            self.node_id,
            self.context.threshold,
        )
        held = {
            sender: open_shares(
                self._keys.channel,
                self._adverts[sender].channel_public,
                self.context,
                sender,
                self.node_id,
                sealed_by_sender[sender],
            )
            for sender in senders
        }
        self._held = held
        self._mask_senders = senders

    def mask(self, vector: np.ndarray) -> None:
        """Step 3b: the self-mask and the pairwise masks with U2, added in place."""
        if not self._mask_senders:
            raise ValidationError("masking needs the shares of this round first")
        plus = [self._keys.self_mask_seed]
        minus: list[bytes] = []
        for peer in self._mask_senders:
            if peer == self.node_id:
                continue
            seed = pair_mask_seed(
                self._keys.mask, self._adverts[peer].mask_public, self.context, self.node_id, peer
            )
            (plus if self.node_id < peer else minus).append(seed)
        apply_masks(vector, plus, minus)

    def reveal(self, survivors: Sequence[str]) -> Reveal:
        """Step 4, once: self-mask shares of ``survivors`` (U3), mask-key shares of the rest
        of U2."""
        if not self._mask_senders:
            raise ValidationError("unmasking asked before this node masked its update")
        if self._revealed:
            raise ValidationError("this node already answered the unmasking step of this round")
        kept = _check_subset(
            "the survivor set",
            list(survivors),
            self._mask_senders,
            self.node_id,
            self.min_survivors,
        )
        self._revealed = True
        dropped = [n for n in self._mask_senders if n not in kept]
        return Reveal(
            {n: self._held[n][0] for n in kept},
            {n: self._held[n][1] for n in dropped},
        )


__all__ = ["KEY_BYTES", "Advert", "Reveal", "SecAggParticipant", "check_threshold"]
