"""Node selection and the round policy: who is asked, who dropped out, when a round fails.

Pure rules first, then an experiment over the in-memory transport with fake nodes that
speak the real protocol (``researcher_fake_node``). ``Harness`` is reused by the other
experiment-level tests of the researcher (checkpoints, aggregators).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from fedward.errors import FederationError, ValidationError
from fedward.researcher.experiment import Experiment
from fedward.researcher.federation import Federation
from fedward.researcher.selection import (
    AllNodes,
    CustomSelection,
    RandomFraction,
    rng_from_state,
    rng_state,
    selection_rng,
)
from fedward.transport.memory import MemoryBlobStore, MemoryBroker
from tests.waiting import eventually

from .researcher_fake_node import FakeNode, NodeBehaviour, add
from .researcher_toy_plan import AddOnePlan

RESEARCHER = "alice"


class Harness:
    """A researcher's federation and fake nodes over the memory transport."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.broker = MemoryBroker()
        self.blob_space = MemoryBlobStore()
        self.state_dir = state_dir
        self.federation = self.connect()
        self.nodes: dict[str, FakeNode] = {}

    def connect(self) -> Federation:
        channel = self.broker.connect(f"researcher-{time.monotonic_ns()}")
        federation = Federation(
            RESEARCHER, channel, self.blob_space.as_peer(RESEARCHER), state_dir=self.state_dir
        )
        federation.on_close(channel.close)
        return federation

    def add_node(self, node_id: str, behaviour: NodeBehaviour | None = None) -> FakeNode:
        node = FakeNode(self.broker, self.blob_space, node_id, behaviour=behaviour)
        self.nodes[node_id] = node
        return node

    def wait_online(self, federation: Federation | None = None) -> None:
        federation = federation or self.federation
        online = [n for n in self.nodes if not self.nodes[n].channel._closed]
        assert eventually(lambda: set(online) <= set(federation.online_nodes()))

    def experiment(self, **options: object) -> Experiment:
        self.wait_online()
        settings: dict[str, object] = {
            "tags": ["toy"],
            "training_plan": AddOnePlan,
            "federation": self.federation,
            "round_timeout_s": 5.0,
            "experiment_id": "exp-test",
            "progress": False,
        }
        settings.update(options)
        return Experiment(**settings)  # type: ignore[arg-type]

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()
        self.federation.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    setup = Harness()
    yield setup
    setup.close()


NODES = [f"node{i}" for i in range(1, 7)]


# --- the rules ----------------------------------------------------------------------------


def test_all_nodes_selects_every_candidate_in_id_order() -> None:
    assert AllNodes().select(["b", "a", "c"], 0, selection_rng(0)) == ["a", "b", "c"]


def test_random_fraction_draws_ceil_of_the_fraction_but_never_fewer_than_the_minimum() -> None:
    rng = selection_rng(0)
    assert len(RandomFraction(0.5).select(NODES, 0, rng)) == 3
    assert len(RandomFraction(0.34).select(NODES, 0, rng)) == 3  # ceil(2.04)
    assert len(RandomFraction(0.1, minimum=4).select(NODES, 0, rng)) == 4
    assert RandomFraction(0.1, minimum=10).select(NODES, 0, rng) == NODES


def test_random_fraction_is_reproducible_from_the_seed_and_varies_between_rounds() -> None:
    rule = RandomFraction(0.5)
    first, second = selection_rng(7), selection_rng(7)
    draws = [rule.select(NODES, r, first) for r in range(5)]
    assert draws == [rule.select(NODES, r, second) for r in range(5)]
    assert len({tuple(d) for d in draws}) > 1


def test_the_rng_state_round_trips_so_a_resumed_draw_is_the_same() -> None:
    rng = selection_rng(3)
    RandomFraction(0.5).select(NODES, 0, rng)
    saved = rng_state(rng)
    expected = RandomFraction(0.5).select(NODES, 1, rng)
    assert RandomFraction(0.5).select(NODES, 1, rng_from_state(saved)) == expected


def test_a_custom_rule_gets_candidates_round_and_rng() -> None:
    seen: list[tuple[list[str], int]] = []

    def even_rounds_first_two(
        candidates: Sequence[str], round_index: int, rng: object
    ) -> list[str]:
        seen.append((list(candidates), round_index))
        return list(candidates[:2]) if round_index % 2 == 0 else list(candidates[2:])

    rule = CustomSelection(even_rounds_first_two)
    assert rule.select(NODES, 0, selection_rng(0)) == ["node1", "node2"]
    assert rule.select(NODES, 1, selection_rng(0)) == NODES[2:]
    assert seen[0] == (NODES, 0)


def test_a_rule_that_picks_an_unknown_or_repeated_node_is_refused() -> None:
    with pytest.raises(ValidationError, match="not candidates: \\['ghost'\\]"):
        CustomSelection(lambda c, r, g: ["ghost"]).select(NODES, 0, selection_rng(0))
    with pytest.raises(ValidationError, match="twice"):
        CustomSelection(lambda c, r, g: ["node1", "node1"]).select(NODES, 0, selection_rng(0))


def test_invalid_fractions_are_refused() -> None:
    for fraction in (0.0, 1.5):
        with pytest.raises(ValidationError, match="fraction"):
            RandomFraction(fraction)
    with pytest.raises(ValidationError, match="minimum"):
        RandomFraction(0.5, minimum=0)


# --- the policy in an experiment ----------------------------------------------------------


def test_a_random_fraction_experiment_asks_only_the_drawn_nodes(harness: Harness) -> None:
    for node_id in NODES[:4]:
        harness.add_node(node_id)
    experiment = harness.experiment(rounds=4, node_selection=RandomFraction(0.5), seed=11)
    history = experiment.run()
    expected_rng = selection_rng(11)
    for record in history:
        drawn = RandomFraction(0.5).select(NODES[:4], record.round_index, expected_rng)
        assert record.succeeded == drawn
        assert record.dropped == []  # not drawn is not dropped
    asked = {n: len(node.train_requests()) for n, node in harness.nodes.items()}
    assert sum(asked.values()) == 8


def test_a_custom_callable_selects_directly(harness: Harness) -> None:
    for node_id in NODES[:3]:
        harness.add_node(node_id)
    experiment = harness.experiment(
        rounds=2, node_selection=lambda c, r, g: [c[r % len(c)]], min_replies=1
    )
    assert [r.succeeded for r in experiment.run()] == [["node1"], ["node2"]]


def test_a_selection_smaller_than_min_replies_fails_before_anything_is_sent(
    harness: Harness,
) -> None:
    for node_id in NODES[:4]:
        harness.add_node(node_id)
    experiment = harness.experiment(node_selection=RandomFraction(0.25), min_replies=2)
    with pytest.raises(
        FederationError, match="can ask only 1 node\\(s\\), fewer than the minimum of 2"
    ):
        experiment.run_once()
    assert all(node.train_requests() == [] for node in harness.nodes.values())
    assert experiment.history == []


@pytest.mark.timeout(60)
def test_a_node_that_goes_offline_mid_round_is_dropped_at_once_and_skipped_after(
    harness: Harness,
) -> None:
    harness.add_node("node1", NodeBehaviour(train=add(1.0)))
    harness.add_node("node2", NodeBehaviour(train=add(3.0)))
    doomed = harness.add_node("node3", NodeBehaviour(silent=True))
    out = io.StringIO()
    # A long deadline: the round must end when node3's will arrives, not at the deadline.
    experiment = harness.experiment(rounds=3, round_timeout_s=60.0, min_replies=2, progress=out)

    def crash_during_first_round() -> None:
        assert eventually(lambda: len(doomed.train_requests()) == 1)
        doomed.channel.crash()

    crasher = threading.Thread(target=crash_during_first_round)
    crasher.start()
    started = time.monotonic()
    history = experiment.run()
    crasher.join()
    assert time.monotonic() - started < 30  # the deadline (60 s) was not waited out
    first, *later = history
    assert first.succeeded == ["node1", "node2"]
    assert first.nodes["node3"].status == "failed"
    assert first.nodes["node3"].error_code == "node_offline"
    for record in later:
        assert record.succeeded == ["node1", "node2"]
        assert record.nodes["node3"].status == "offline"
    assert len(doomed.train_requests()) == 1  # never asked again while offline
    np.testing.assert_allclose(experiment.aggregated_params()["weight"], np.full((2, 3), 6.0))
    assert "node3 failed" in out.getvalue()
    assert "node3 offline" in out.getvalue()


def test_the_experiment_stops_when_too_many_nodes_are_offline(harness: Harness) -> None:
    harness.add_node("node1")
    gone = harness.add_node("node2")
    experiment = harness.experiment(rounds=2, min_replies=2)
    experiment.run_once()
    gone.channel.crash()
    assert eventually(lambda: harness.federation.offline_nodes() == ["node2"])
    with pytest.raises(FederationError, match="offline: \\['node2'\\]"):
        experiment.run_once()
    assert len(experiment.history) == 1
