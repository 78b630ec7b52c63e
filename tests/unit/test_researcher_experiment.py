from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from fedward.core.plan_digest import plan_digest
from fedward.errors import FederationError, ValidationError
from fedward.learning.plan_source import plan_source
from fedward.researcher.experiment import Experiment
from fedward.researcher.federation import Federation
from fedward.researcher.history import RoundRecord
from fedward.transport.memory import MemoryBlobStore, MemoryBroker
from tests.waiting import eventually

from .researcher_fake_node import FakeNode, NodeBehaviour, add
from .researcher_toy_plan import AddOnePlan

RESEARCHER = "alice"
TAGS = ["toy"]


class Federated:
    """A researcher's federation plus the fake nodes it talks to, over the memory transport."""

    def __init__(self) -> None:
        self.broker = MemoryBroker()
        self.blob_space = MemoryBlobStore()
        self.channel = self.broker.connect("researcher-alice")
        self.federation = Federation(RESEARCHER, self.channel, self.blob_space.as_peer(RESEARCHER))
        self.nodes: dict[str, FakeNode] = {}

    def add_node(self, node_id: str, behaviour: NodeBehaviour | None = None) -> FakeNode:
        node = FakeNode(self.broker, self.blob_space, node_id, behaviour=behaviour)
        self.nodes[node_id] = node
        return node

    def wait_until_online(self) -> None:
        assert eventually(lambda: self.federation.online_nodes() == sorted(self.nodes))

    def experiment(self, **options: object) -> Experiment:
        self.wait_until_online()
        settings: dict[str, object] = {
            "tags": TAGS,
            "training_plan": AddOnePlan,
            "federation": self.federation,
            "round_timeout_s": 5.0,
            "experiment_id": "exp-test",
        }
        settings.update(options)
        return Experiment(**settings)  # type: ignore[arg-type]

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()
        self.channel.close()


@pytest.fixture
def federated() -> Iterator[Federated]:
    setup = Federated()
    yield setup
    setup.close()


def initial() -> dict[str, np.ndarray]:
    return AddOnePlan().init_params(seed=0)


# --- a normal run ---------------------------------------------------------------------


def test_two_rounds_of_nodes_adding_one_move_every_parameter_by_two(federated: Federated) -> None:
    federated.add_node("node1", NodeBehaviour(sample_count=10))
    federated.add_node("node2", NodeBehaviour(sample_count=30))
    experiment = federated.experiment(rounds=2)
    history = experiment.run()
    result = experiment.aggregated_params()
    np.testing.assert_allclose(result["weight"], initial()["weight"] + 2)
    np.testing.assert_allclose(result["offset"], initial()["offset"] + 2)
    assert result["weight"].dtype == np.float32
    assert result["offset"].dtype == np.float64
    assert [r.round_index for r in history] == [0, 1]
    assert all(r.succeeded == ["node1", "node2"] and r.dropped == [] for r in history)


def test_fedavg_weights_each_node_by_its_sample_count(federated: Federated) -> None:
    federated.add_node("node1", NodeBehaviour(train=add(1.0), sample_count=10))
    federated.add_node("node2", NodeBehaviour(train=add(5.0), sample_count=30))
    experiment = federated.experiment(rounds=2)
    experiment.run()
    # Each round: (10 * 1 + 30 * 5) / 40 = 4; two rounds: 8.
    result = experiment.aggregated_params()
    np.testing.assert_allclose(result["weight"], np.full((2, 3), 8.0))
    np.testing.assert_allclose(result["offset"], np.full(2, 8.0))


def test_each_round_starts_from_the_previous_rounds_result(federated: Federated) -> None:
    node = federated.add_node("node1", NodeBehaviour(train=add(3.0)))
    federated.experiment(rounds=3).run()
    sent = [p["weight"] for p in node.received_params]
    for round_index, params in enumerate(sent):
        np.testing.assert_allclose(params, np.full((2, 3), 3.0 * round_index))


def test_train_requests_carry_the_plan_round_and_dataset(federated: Federated) -> None:
    node = federated.add_node("node1")
    experiment = federated.experiment(
        rounds=2, model_args={"width": 3}, training_args={"optimizer_args": {"lr": 0.1}}, seed=7
    )
    experiment.run()
    requests = node.train_requests()
    assert [r.round_index for r in requests] == [0, 1]
    source = plan_source(AddOnePlan)
    for request in requests:
        assert request.experiment_id == "exp-test"
        assert request.dataset_id == "ds-node1"
        assert request.plan_class == "AddOnePlan"
        assert request.plan_digest == plan_digest(source) == experiment.plan_digest
        assert node.blobs.get_bytes(request.plan_blob).decode("utf-8") == source
        assert request.model_args == {"width": 3}
        assert request.training_args == {"seed": 7, "optimizer_args": {"lr": 0.1}}
    np.testing.assert_allclose(node.received_params[0]["offset"], [7.0, 7.0])


def test_metrics_and_sample_counts_are_recorded_per_node(federated: Federated) -> None:
    federated.add_node("node1", NodeBehaviour(sample_count=10, metrics={"accuracy": 0.5}))
    federated.add_node("node2", NodeBehaviour(sample_count=30, metrics={"accuracy": 0.9}))
    seen: list[RoundRecord] = []
    experiment = federated.experiment(on_round=seen.append)
    (record,) = experiment.run()
    assert seen == [record]
    assert record.nodes["node1"].sample_count == 10
    assert record.nodes["node2"].metrics == {"accuracy": 0.9}
    assert record.metrics["accuracy"] == pytest.approx((10 * 0.5 + 30 * 0.9) / 40)


def test_only_the_named_nodes_take_part(federated: Federated) -> None:
    federated.add_node("node1")
    left_out = federated.add_node("node2")
    experiment = federated.experiment(nodes=["node1"])
    (record,) = experiment.run()
    assert record.succeeded == ["node1"]
    assert left_out.train_requests() == []


# --- nodes that fail or are late ----------------------------------------------------------


@pytest.mark.timeout(60)
def test_a_late_node_is_dropped_from_the_round_and_named_in_the_history(
    federated: Federated,
) -> None:
    federated.add_node("node1", NodeBehaviour(train=add(1.0), sample_count=10))
    federated.add_node("node2", NodeBehaviour(train=add(3.0), sample_count=10))
    federated.add_node("slow", NodeBehaviour(train=add(100.0), silent=True))
    experiment = federated.experiment(rounds=2, round_timeout_s=0.5)
    history = experiment.run()
    for record in history:
        assert record.succeeded == ["node1", "node2"]
        assert record.dropped == ["slow"]
        assert record.nodes["slow"].status == "late"
        assert "no reply within" in record.nodes["slow"].error
    # The late node's (absent) update does not count: (1 + 3) / 2 = 2 per round.
    np.testing.assert_allclose(experiment.aggregated_params()["weight"], np.full((2, 3), 4.0))


@pytest.mark.timeout(60)
def test_an_answer_after_the_deadline_does_not_leak_into_the_next_round(
    federated: Federated,
) -> None:
    federated.add_node("node1", NodeBehaviour(train=add(1.0)))
    # Answers 0.6 s after a 0.3 s deadline: during round 1, to round 0's request.
    federated.add_node("slow", NodeBehaviour(train=add(100.0), delay_s=0.6))
    experiment = federated.experiment(rounds=2, round_timeout_s=0.3)
    history = experiment.run()
    assert [r.dropped for r in history] == [["slow"], ["slow"]]
    np.testing.assert_allclose(experiment.aggregated_params()["weight"], np.full((2, 3), 2.0))


def test_a_node_that_reports_an_error_is_dropped_with_its_code(federated: Federated) -> None:
    federated.add_node("node1")
    federated.add_node("node2", NodeBehaviour(error=("plan_not_approved", "plan is pending")))
    (record,) = federated.experiment().run()
    assert record.succeeded == ["node1"]
    failed = record.nodes["node2"]
    assert (failed.status, failed.error_code, failed.error) == (
        "failed",
        "plan_not_approved",
        "plan is pending",
    )


def test_an_update_with_another_layout_is_refused_and_the_round_goes_on(
    federated: Federated,
) -> None:
    # The odd update arrives first: the layout to hold updates to is the global model's,
    # not whichever update happens to arrive first.
    federated.add_node("node1", NodeBehaviour(train=add(1.0), delay_s=0.2))
    federated.add_node("odd", NodeBehaviour(train=lambda p: {"weight": np.zeros(5, np.float32)}))
    experiment = federated.experiment()
    (record,) = experiment.run()
    assert record.succeeded == ["node1"]
    assert record.nodes["odd"].status == "failed"
    assert "parameter names differ" in record.nodes["odd"].error
    np.testing.assert_allclose(experiment.aggregated_params()["weight"], np.ones((2, 3)))


@pytest.mark.timeout(60)
def test_too_few_replies_fail_the_round_with_a_clear_message(federated: Federated) -> None:
    federated.add_node("node1")
    federated.add_node("node2", NodeBehaviour(silent=True))
    experiment = federated.experiment(min_replies=2, round_timeout_s=0.3)
    with pytest.raises(FederationError) as caught:
        experiment.run()
    message = str(caught.value)
    assert "round 1 got 1 update(s), fewer than the minimum of 2" in message
    assert "node2: late" in message
    assert experiment.history == []  # the failed round is not recorded as done


def test_no_matching_node_is_a_federation_error_with_advice(federated: Federated) -> None:
    federated.add_node("node1")
    experiment = federated.experiment(tags=["no-such-tag"])
    with pytest.raises(
        FederationError, match=r"no online node has a dataset with tags \['no-such-tag'\]"
    ):
        experiment.run()


def test_invalid_settings_are_refused_up_front(federated: Federated) -> None:
    with pytest.raises(ValidationError, match="rounds"):
        federated.experiment(rounds=0)
    with pytest.raises(ValidationError, match="tag"):
        federated.experiment(tags=[])
    with pytest.raises(ValidationError, match="experiment id"):
        federated.experiment(experiment_id="../x")
