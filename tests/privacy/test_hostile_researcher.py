"""A researcher who tampers with the key exchange is caught by the nodes, and audited.

The researcher relays the sealed shares between nodes; these tests make it substitute
one sender's shares for another's, and replay last round's shares. (It cannot publish
keys on a node's advert topic at all: ``tests/integration/test_broker_acl_matrix.py``.)
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from fedward.core.messages import SecAggMaskRequest
from fedward.errors import FederationError
from fedward.protocol.codec import decode_request, encode
from fedward.researcher.privacy_settings import SecAgg
from fedward.transport.memory import MemoryChannel
from tests.privacy.sites import PrivateSites

MaskTamper = Callable[[str, SecAggMaskRequest], SecAggMaskRequest]


class TamperingChannel:
    """The researcher's channel, rewriting the mask requests it sends."""

    def __init__(self, inner: MemoryChannel) -> None:
        self.inner = inner
        self.tamper: MaskTamper | None = None
        self.sent: list[tuple[str, SecAggMaskRequest]] = []

    def subscribe(self, topic_filter: str, handler: Callable[[str, bytes], None]) -> None:
        self.inner.subscribe(topic_filter, handler)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        try:
            message = decode_request(payload)
        except ValueError:
            message = None
        if isinstance(message, SecAggMaskRequest):
            node_id = topic.split("/")[3]
            self.sent.append((node_id, message))
            if self.tamper is not None:
                payload = encode(self.tamper(node_id, message))
        self.inner.publish(topic, payload, retain=retain)

    def close(self) -> None:
        self.inner.close()


def tampering_sites(
    start_sites: Callable[..., PrivateSites],
) -> tuple[PrivateSites, TamperingChannel]:
    channels: list[TamperingChannel] = []

    def wrap(inner: MemoryChannel) -> TamperingChannel:
        channels.append(TamperingChannel(inner))
        return channels[-1]

    sites = start_sites(5, researcher_channel=wrap)
    return sites, channels[0]


def refusals(sites: PrivateSites, node_id: str) -> list[str]:
    events = sites.services[node_id].audit.list_events(limit=100, kind="secagg_refused")
    return [e.detail for e in events]


def test_shares_substituted_by_the_researcher_are_refused_by_the_node(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sites, channel = tampering_sites(start_sites)

    def swap(node_id: str, request: SecAggMaskRequest) -> SecAggMaskRequest:
        if node_id != "node0":
            return request
        sealed = dict(request.sealed)
        sealed["node1"], sealed["node2"] = sealed["node2"], sealed["node1"]
        return msgspec.structs.replace(request, sealed=sealed)

    channel.tamper = swap
    record = sites.experiment(secure_aggregation=SecAgg(threshold=3)).run_once()
    assert record.nodes["node0"].status == "failed"
    assert "substituted or replayed" in record.nodes["node0"].error
    assert record.succeeded == ["node1", "node2", "node3", "node4"]
    assert any("substituted or replayed" in d for d in refusals(sites, "node0"))


def test_shares_replayed_from_an_earlier_round_are_refused_and_the_round_fails(
    start_sites: Callable[..., PrivateSites],
) -> None:
    sites, channel = tampering_sites(start_sites)
    experiment = sites.experiment(secure_aggregation=SecAgg(threshold=3), rounds=2)
    experiment.run_once()
    first_round = {node_id: request for node_id, request in channel.sent}

    def replay(node_id: str, request: SecAggMaskRequest) -> SecAggMaskRequest:
        old = first_round[node_id]
        return msgspec.structs.replace(request, sealed=old.sealed)

    channel.tamper = replay
    with pytest.raises(FederationError, match="threshold"):
        experiment.run_once()
    assert len(experiment.history) == 1
    for node_id in sites.node_ids:
        assert any("round 1" in d and "replayed" in d for d in refusals(sites, node_id))
