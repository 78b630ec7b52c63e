"""Secure aggregation through real node daemons: the sum is FedAvg's, dropouts after the
key exchange are survived, and below the threshold nothing is revealed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from fedward.core.messages import ScalarEvent
from fedward.core.params import Params
from fedward.errors import FederationError, ValidationError
from fedward.privacy.ring import mean_error_bound
from fedward.researcher import Experiment
from fedward.researcher.aggregators import FedAdam, FedAvg, Krum
from fedward.researcher.history import RoundRecord
from fedward.researcher.privacy_settings import SecAgg
from tests.privacy.sites import PrivateSites


class DropAfterShares:
    """Stops the given nodes right after each has sent its key shares."""

    def __init__(self, sites: PrivateSites, victims: Sequence[str]) -> None:
        self.sites = sites
        self.victims = set(victims)

    def round_started(self, round_index: int, nodes: Sequence[str]) -> None: ...

    def node_changed(self, round_index: int, node_id: str, status: str) -> None:
        if status == "shares" and node_id in self.victims:
            self.sites.daemons[node_id].stop()

    def scalar(self, node_id: str, event: ScalarEvent) -> None: ...

    def round_finished(self, record: RoundRecord) -> None: ...

    def close(self) -> None: ...


def plain_fedavg(sites: PrivateSites, nodes: Sequence[str], global_params: Params) -> Params:
    """FedAvg, in the clear, of the updates ``nodes`` send."""
    mean = FedAvg()
    mean.begin_round(global_params, 0)
    for node_id in sorted(nodes):
        update, weight = sites.reference_update(node_id, global_params)
        mean.add(node_id, update, float(weight))
    return mean.finish()


def assert_within_quantisation(secure: Params, plain: Params, count: int, weight: int) -> None:
    bound = mean_error_bound(24, count, weight)
    worst = max(float(np.max(np.abs(secure[n].astype(np.float64) - plain[n]))) for n in plain)
    # Besides the fixed-point rounding, the plain mean is summed in float32.
    float32_slack = (
        4 * np.finfo(np.float32).eps * max(float(np.max(np.abs(v))) for v in plain.values())
    )
    print(f"secure vs plain FedAvg: max error {worst:.3g}; quantisation bound {bound:.3g}")
    assert worst <= bound + float32_slack


def test_secure_aggregation_equals_plain_fedavg_within_the_quantisation_error(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sites = start_sites(5)
    plain = sites.experiment()
    plain.run_once()
    secure = sites.experiment(secure_aggregation=SecAgg(threshold=3))
    record = secure.run_once()
    assert record.succeeded == sorted(sites.node_ids)
    weight = sum(sites.reference_update(n, plain.global_params())[1] for n in sites.node_ids)
    assert_within_quantisation(secure.aggregated_params(), plain.aggregated_params(), 5, weight)


@pytest.mark.parametrize("dropped", [["node1"], ["node1", "node3"]], ids=["one", "two"])
def test_secure_round_survives_nodes_that_drop_out_after_the_key_exchange(
    start_sites: Callable[..., PrivateSites], dropped: list[str]
) -> None:
    sites = start_sites(5)
    experiment = sites.experiment(
        secure_aggregation=SecAgg(threshold=3, step_timeout_s=3),
        observers=[DropAfterShares(sites, dropped)],
    )
    start = experiment.global_params()
    record = experiment.run_once()
    survivors = [n for n in sites.node_ids if n not in dropped]
    assert record.succeeded == survivors
    for node_id in dropped:
        assert record.nodes[node_id].status in ("late", "failed")
        assert "masked update" in record.nodes[node_id].error
    weight = sum(sites.reference_update(n, start)[1] for n in survivors)
    expected = plain_fedavg(sites, survivors, start)
    assert_within_quantisation(experiment.aggregated_params(), expected, 3, weight)


def test_below_the_threshold_the_round_fails_and_reveals_nothing(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sites = start_sites(5)
    experiment = sites.experiment(
        secure_aggregation=SecAgg(threshold=3, step_timeout_s=3),
        observers=[DropAfterShares(sites, ["node0", "node2", "node4"])],
    )
    before = experiment.aggregated_params()
    with pytest.raises(FederationError, match="fewer than the secure-aggregation threshold of 3"):
        experiment.run_once()
    assert experiment.history == []
    after = experiment.aggregated_params()
    assert all(np.array_equal(before[n], after[n]) for n in before)
    # The researcher never asked anyone to unmask: no share of any secret left a node.
    assert all(
        "unmask" not in str(e.detail)
        for s in sites.services.values()
        for e in s.audit.list_events(limit=50)
    )


def test_aggregators_that_need_each_update_refuse_secure_aggregation(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sites = start_sites(2)
    with pytest.raises(ValidationError, match="needs each node's update"):
        sites.experiment(aggregator=Krum(), secure_aggregation=SecAgg())
    sites.experiment(aggregator=FedAdam(), secure_aggregation=SecAgg())  # acts on the mean


def test_a_threshold_of_half_the_nodes_or_less_is_refused(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sites = start_sites(4)
    experiment = sites.experiment(secure_aggregation=SecAgg(threshold=2))
    with pytest.raises(ValidationError, match="more than half"):
        experiment.run_once()
    assert isinstance(experiment, Experiment)
