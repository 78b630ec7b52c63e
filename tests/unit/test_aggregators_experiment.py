"""Aggregators inside an experiment: what travels to the nodes and back, over the protocol."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from fedward.core.messages import TrainReply, TrainRequest
from fedward.learning.plan import (
    SCAFFOLD_DELTA_CONTROL,
    SCAFFOLD_NODE_CONTROL,
    SCAFFOLD_SERVER_CONTROL,
)
from fedward.protocol.params_wire import params_from_bytes, params_to_bytes
from fedward.researcher.aggregators import CoordinateMedian, FedProx, Krum, Scaffold

from .researcher_fake_node import FakeNode, NodeBehaviour, add
from .test_selection import Harness


class ScaffoldNode(FakeNode):
    """Adds ``step`` to every parameter and reports a fixed control delta, like a plan
    implementing SCAFFOLD's client step would (or no delta, with ``implements=False``)."""

    def __init__(
        self, *args: object, step: float, delta: float, implements: bool = True, **kwargs: object
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.step, self.delta, self.implements = step, delta, implements
        self.extras_seen: list[dict[str, dict[str, np.ndarray]]] = []

    def _on_train(self, researcher_id: str, request: TrainRequest) -> None:
        params = params_from_bytes(self.blobs.get_bytes(request.params_blob))
        extras = {
            name: params_from_bytes(self.blobs.get_bytes(blob))
            for name, blob in request.extra_blobs.items()
        }
        self.extras_seen.append(extras)
        trained = {name: value + self.step for name, value in params.items()}
        extra_blobs = {}
        if self.implements:
            delta = {
                name: np.full_like(v, self.delta)
                for name, v in extras[SCAFFOLD_SERVER_CONTROL].items()
            }
            extra_blobs[SCAFFOLD_DELTA_CONTROL] = self.blobs.put_bytes(
                params_to_bytes(delta), readers=[researcher_id]
            )
        self.reply(
            researcher_id,
            TrainReply(
                request_id=request.request_id,
                experiment_id=request.experiment_id,
                round_index=request.round_index,
                params_blob=self.blobs.put_bytes(params_to_bytes(trained), readers=[researcher_id]),
                sample_count=10,
                extra_blobs=extra_blobs,
            ),
        )


@pytest.fixture
def harness() -> Iterator[Harness]:
    setup = Harness()
    yield setup
    setup.close()


def scaffold_node(harness: Harness, node_id: str, **kwargs: object) -> ScaffoldNode:
    node = ScaffoldNode(harness.broker, harness.blob_space, node_id, **kwargs)
    harness.nodes[node_id] = node
    return node


def test_scaffold_controls_travel_to_each_node_and_deltas_come_back(harness: Harness) -> None:
    first = scaffold_node(harness, "node1", step=1.0, delta=0.5)
    second = scaffold_node(harness, "node2", step=3.0, delta=1.5)
    aggregator = Scaffold()
    experiment = harness.experiment(rounds=2, aggregator=aggregator)
    experiment.run()
    # Round 0: c = 0, c_i = 0. After: c = (0.5 + 1.5) / 2 = 1, c_1 = 0.5, c_2 = 1.5.
    np.testing.assert_allclose(first.extras_seen[0][SCAFFOLD_SERVER_CONTROL]["weight"], 0.0)
    np.testing.assert_allclose(first.extras_seen[1][SCAFFOLD_SERVER_CONTROL]["weight"], 1.0)
    np.testing.assert_allclose(first.extras_seen[1][SCAFFOLD_NODE_CONTROL]["weight"], 0.5)
    np.testing.assert_allclose(second.extras_seen[1][SCAFFOLD_NODE_CONTROL]["weight"], 1.5)
    assert set(first.extras_seen[1][SCAFFOLD_SERVER_CONTROL]) == {"weight", "offset"}
    # Each node's control is sent to that node only.
    request = second.train_requests()[1]
    with pytest.raises(LookupError):
        first.blobs.get_bytes(request.extra_blobs[SCAFFOLD_NODE_CONTROL])
    np.testing.assert_allclose(experiment.aggregated_params()["weight"], 4.0)  # 2 x mean(1, 3)
    np.testing.assert_allclose(aggregator.control["weight"], 2.0)


def test_a_node_whose_plan_has_no_scaffold_step_is_dropped_with_the_reason(
    harness: Harness,
) -> None:
    scaffold_node(harness, "node1", step=1.0, delta=0.5)
    scaffold_node(harness, "node2", step=3.0, delta=0.0, implements=False)
    (record,) = harness.experiment(aggregator=Scaffold()).run()
    assert record.succeeded == ["node1"]
    assert record.nodes["node2"].status == "failed"
    assert "scaffold_delta_control" in record.nodes["node2"].error


def test_fedprox_mu_reaches_every_node_in_its_training_args(harness: Harness) -> None:
    node = harness.add_node("node1")
    harness.experiment(aggregator=FedProx(mu=0.25), training_args={"epochs": 2}).run()
    assert node.train_requests()[0].training_args == {"seed": 0, "epochs": 2, "fedprox_mu": 0.25}


@pytest.mark.parametrize(
    "aggregator", [CoordinateMedian(), Krum(byzantine=1)], ids=["median", "krum"]
)
def test_robust_rules_ignore_one_wild_node(harness: Harness, aggregator: object) -> None:
    for node_id, step in [("node1", 1.0), ("node2", 1.1), ("node3", 0.9), ("node4", 1.0)]:
        harness.add_node(node_id, NodeBehaviour(train=add(step)))
    harness.add_node("wild", NodeBehaviour(train=add(1e6)))
    experiment = harness.experiment(aggregator=aggregator)
    (record,) = experiment.run()
    assert len(record.succeeded) == 5
    weight = experiment.aggregated_params()["weight"]
    assert np.all(np.abs(weight - 1.0) <= 0.1 + 1e-6)
