"""Secure aggregation's mathematics and cryptography, without I/O (``fedward.privacy``)."""

from __future__ import annotations

import numpy as np
import pytest

from fedward.errors import FederationError, IntegrityError, ValidationError
from fedward.privacy import ring, shamir
from fedward.privacy.secagg_keys import SessionContext
from fedward.privacy.secagg_participant import SecAggParticipant
from fedward.privacy.secagg_unmasking import SecAggUnmasking

NODES = [f"n{i}" for i in range(5)]
SIZE = 20_000


def context(round_index: int = 0, threshold: int = 3) -> SessionContext:
    return SessionContext("r1", "exp", round_index, tuple(NODES), threshold, 24)


def run_until_masked(
    ctx: SessionContext, values: dict[str, np.ndarray]
) -> tuple[dict[str, SecAggParticipant], dict[str, np.ndarray], SecAggUnmasking]:
    nodes = {n: SecAggParticipant(ctx, n) for n in NODES}
    adverts = {n: p.advert() for n, p in nodes.items()}
    sealed = {n: p.seal_shares(adverts) for n, p in nodes.items()}
    masked: dict[str, np.ndarray] = {}
    for node_id, participant in nodes.items():
        participant.open_shares({sender: sealed[sender][node_id] for sender in NODES})
        vector = ring.encode(values[node_id], 24, len(NODES))
        participant.mask(vector)
        masked[node_id] = vector
    return nodes, masked, SecAggUnmasking(ctx, adverts, NODES, SIZE)


def updates() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {n: rng.normal(size=SIZE) * (i + 1) for i, n in enumerate(NODES)}


def test_shamir_any_threshold_shares_recover_the_secret_and_fewer_do_not() -> None:
    secret = bytes(range(32))
    shares = shamir.split(secret, [1, 2, 3, 4, 5], 3)
    assert shamir.combine({x: shares[x] for x in (1, 3, 5)}, 32) == secret
    assert shamir.combine({x: shares[x] for x in (2, 4, 5)}, 32) == secret
    # Two shares give an unrelated field element.
    assert shamir.combine({x: shares[x] for x in (1, 2)}, 66) != secret.rjust(66, b"\0")


def test_fixed_point_range_is_refused_not_wrapped() -> None:
    limit = ring.max_abs_value(24, 5)
    ring.encode(np.array([limit * 0.99]), 24, 5)
    with pytest.raises(ValidationError, match="range"):
        ring.encode(np.array([limit]), 24, 5)


@pytest.mark.parametrize("dropped", [[], ["n1"], ["n1", "n3"]])
def test_unmasked_sum_is_the_survivors_sum_within_the_quantisation_error(
    dropped: list[str],
) -> None:
    values = updates()
    nodes, masked, unmasking = run_until_masked(context(), values)
    survivors = [n for n in NODES if n not in dropped]
    for node_id in survivors:
        unmasking.add_masked(node_id, masked[node_id])
    reveals = {n: nodes[n].reveal(survivors) for n in survivors}
    total = ring.decode(unmasking.unmask(reveals), 24)
    exact = sum(values[n] for n in survivors)
    error = float(np.max(np.abs(total - exact)))
    print(f"dropped {dropped}: max error {error:.3g}, bound {len(survivors) * 2.0**-25:.3g}")
    assert error <= len(survivors) * 2.0**-25


def test_below_the_threshold_nothing_is_unmasked() -> None:
    values = updates()
    nodes, masked, unmasking = run_until_masked(context(), values)
    for node_id in ("n0", "n1", "n2"):
        unmasking.add_masked(node_id, masked[node_id])
    reveals = {n: nodes[n].reveal(["n0", "n1", "n2"]) for n in ("n0", "n1")}
    with pytest.raises(FederationError, match="threshold of 3"):
        unmasking.unmask(reveals)


def test_a_masked_vector_is_statistically_independent_of_the_update() -> None:
    values = updates()
    _, masked, _ = run_until_masked(context(), values)
    for node_id in NODES:
        as_real = masked[node_id].astype(np.float64)
        correlation = float(np.corrcoef(as_real, values[node_id])[0, 1])
        top_bit = float(np.mean(masked[node_id] >> np.uint64(63)))
        print(f"{node_id}: correlation {correlation:+.4f}, top bit set {top_bit:.3f}")
        assert abs(correlation) < 0.05  # 7 standard errors at 20,000 coordinates
        assert abs(top_bit - 0.5) < 0.05  # uniform over the ring, unlike a small update


def test_a_node_answers_the_unmasking_step_once_and_never_for_a_minority() -> None:
    nodes, _, _ = run_until_masked(context(), updates())
    with pytest.raises(ValidationError, match="fewer than"):
        nodes["n0"].reveal(["n0", "n1"])
    nodes["n0"].reveal(["n0", "n1", "n2"])
    with pytest.raises(ValidationError, match="already answered"):
        nodes["n0"].reveal(["n0", "n1", "n2", "n3"])


def test_substituted_or_replayed_shares_do_not_open() -> None:
    ctx = context()
    nodes = {n: SecAggParticipant(ctx, n) for n in NODES}
    adverts = {n: p.advert() for n, p in nodes.items()}
    sealed = {n: p.seal_shares(adverts) for n, p in nodes.items()}
    # Substitution: the researcher files n2's shares for n0 under n1's name.
    forged = {sender: sealed[sender]["n0"] for sender in NODES}
    forged["n1"] = sealed["n2"]["n0"]
    with pytest.raises(IntegrityError, match="substituted or replayed"):
        nodes["n0"].open_shares(forged)
    # Replay: shares from round 0 offered in round 1 (new keys, another context).
    later = context(round_index=1)
    again = {n: SecAggParticipant(later, n) for n in NODES}
    later_adverts = {n: p.advert() for n, p in again.items()}
    for participant in again.values():
        participant.seal_shares(later_adverts)
    with pytest.raises(IntegrityError):
        again["n0"].open_shares({sender: sealed[sender]["n0"] for sender in NODES})


def test_a_key_advertised_for_another_node_is_refused() -> None:
    ctx = context()
    nodes = {n: SecAggParticipant(ctx, n) for n in NODES}
    adverts = {n: p.advert() for n, p in nodes.items()}
    adverts["n1"] = adverts["n2"]
    with pytest.raises(IntegrityError, match="n2's"):
        nodes["n0"].seal_shares(adverts)


@pytest.mark.parametrize(("threshold", "size"), [(2, 4), (1, 3), (6, 5)])
def test_thresholds_that_are_not_a_strict_majority_are_refused(threshold: int, size: int) -> None:
    with pytest.raises(ValidationError):
        SessionContext("r", "e", 0, tuple(NODES[:size]), threshold, 24)
        SecAggParticipant(SessionContext("r", "e", 0, tuple(NODES[:size]), threshold, 24), "n0")


def test_a_node_with_a_higher_floor_refuses_to_unmask_fewer_survivors() -> None:
    ctx = context()
    strict = SecAggParticipant(ctx, "n0", min_survivors=4)
    others = {n: SecAggParticipant(ctx, n) for n in NODES[1:]}
    nodes = {"n0": strict, **others}
    adverts = {n: p.advert() for n, p in nodes.items()}
    sealed = {n: p.seal_shares(adverts) for n, p in nodes.items()}
    strict.open_shares({sender: sealed[sender]["n0"] for sender in NODES})
    strict.mask(np.zeros(4, dtype=np.uint64))
    with pytest.raises(ValidationError, match="fewer than the 4"):
        strict.reveal(["n0", "n1", "n2"])
