"""The node's own privacy floor: refusals name the rule and are audited; the node counts
each researcher's epsilon on each dataset across experiments."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fedward.config.model import PrivacyPolicy
from fedward.errors import FederationError
from fedward.node.privacy_ledger import PrivacyLedger
from fedward.researcher.privacy_settings import CentralDP, SecAgg
from tests.privacy.sites import RESEARCHER, PrivateSites
from tests.unit.test_privacy_dp import reference_epsilon


def policy_for_all(sites_count: int, policy: PrivacyPolicy) -> dict[str, PrivacyPolicy]:
    return {f"node{i}": policy for i in range(sites_count)}


def audit(sites: PrivateSites, node_id: str) -> list[str]:
    events = sites.services[node_id].audit.list_events(limit=100, kind="privacy_refused")
    return [e.detail for e in events]


def test_a_node_that_requires_secure_aggregation_refuses_a_plain_experiment_and_accepts_it_with(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sites = start_sites(
        3, policies=policy_for_all(3, PrivacyPolicy(require_secure_aggregation=True))
    )
    plain = sites.experiment()
    with pytest.raises(FederationError, match=r"\[privacy\] require_secure_aggregation"):
        plain.run_once()
    assert plain.history == []
    for node_id in sites.node_ids:
        assert any("require_secure_aggregation" in d for d in audit(sites, node_id))
    record = sites.experiment(secure_aggregation=SecAgg()).run_once()
    assert record.succeeded == sites.node_ids


def test_a_refusal_names_the_rule_in_the_researchers_history(
    start_sites: Callable[..., PrivateSites],
) -> None:
    policies = {"node0": PrivacyPolicy(min_noise_multiplier=1.0)}
    sites = start_sites(2, policies=policies)
    record = sites.experiment(differential_privacy=CentralDP(1.0, 0.5)).run_once()
    assert record.nodes["node0"].status == "failed"
    assert record.nodes["node0"].error_code == "privacy_policy"
    assert "min_noise_multiplier" in record.nodes["node0"].error
    assert "noise multiplier >= 1" in record.nodes["node0"].error
    assert record.succeeded == ["node1"]


def test_a_minimum_of_nodes_per_round_needs_that_many_in_a_secure_round(
    start_sites: Callable[..., PrivateSites],
) -> None:
    policies = {"node0": PrivacyPolicy(min_nodes_per_round=3)}
    sites = start_sites(3, policies=policies)
    small = sites.experiment(nodes=["node0", "node1"], secure_aggregation=SecAgg(threshold=2))
    with pytest.raises(FederationError, match="min_nodes_per_round"):
        small.run_once()
    assert any("min_nodes_per_round" in d for d in audit(sites, "node0"))
    record = sites.experiment(secure_aggregation=SecAgg(threshold=3)).run_once()
    assert record.succeeded == sites.node_ids


def test_a_researchers_budget_on_a_dataset_carries_across_experiments(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sigma, delta = 1.5, 1e-5
    two, three = (reference_epsilon(sigma, 1.0, k, delta) for k in (2, 3))
    policy = PrivacyPolicy(epsilon_budget=(two + three) / 2, delta=delta)
    sites = start_sites(2, policies=policy_for_all(2, policy))
    dp = CentralDP(clip_norm=1.0, noise_multiplier=sigma, delta=delta)
    first = sites.experiment(differential_privacy=dp)
    first.run_once()
    second = sites.experiment(differential_privacy=dp)
    second.run_once()  # two rounds spent, over two experiments
    with pytest.raises(FederationError, match="epsilon_budget"):
        sites.experiment(differential_privacy=dp).run_once()
    for node_id in sites.node_ids:
        assert any(f"researcher {RESEARCHER}" in d for d in audit(sites, node_id))
        spent = PrivacyLedger.in_state_dir(sites.root / node_id).spent(delta)
        assert [(s.researcher_id, s.experiments, s.rounds) for s in spent] == [(RESEARCHER, 2, 2)]
        assert spent[0].epsilon == two
