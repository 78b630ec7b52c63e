"""Connections the embedded broker will hold: strangers before authentication, and the
honest scale it must still serve.

A stranger could open any number of connections, each announcing a CONNECT of up to
the packet limit (1 MiB) that the broker buffered whole before looking at the password.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fedward.broker.limits import MAX_CONNECT_BYTES, MAX_HANDSHAKES_PER_ADDRESS
from fedward.broker.peers import BrokerPeer
from fedward.config.model import BrokerEndpoint, Secret
from fedward.protocol import topics
from fedward.transport.mqtt import MqttChannel

from .conftest import broker_test_peers
from .embedded_broker_process import BrokerProcess, start_broker_process
from .test_broker_behaviour import closed_by_peer

SCALE_NODES = 50


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    started = start_broker_process(tmp_path / "broker", broker_test_peers())
    yield started
    started.stop()


def test_a_connect_larger_than_the_first_packet_limit_is_closed_at_once(
    broker: BrokerProcess,
) -> None:
    with broker.open("127.0.0.2") as sock:
        announced = 1 << 20  # remaining length 1 MiB, in MQTT's variable-length encoding
        header = bytes([0x10, 0x80, 0x80, 0x40])
        assert announced == 0x40 << 14
        sock.sendall(header + b"q" * MAX_CONNECT_BYTES)
        started = time.monotonic()
        assert closed_by_peer(sock, timeout_s=3)
        assert time.monotonic() - started < 3
    broker.session("node1", "node1-after-big-connect").close()


def test_handshakes_past_the_per_address_cap_are_closed_at_once(broker: BrokerProcess) -> None:
    silent = [broker.open("127.0.0.2") for _ in range(MAX_HANDSHAKES_PER_ADDRESS)]
    try:
        time.sleep(0.5)  # the broker has accepted them all
        with broker.open("127.0.0.2") as one_more:
            assert closed_by_peer(one_more, timeout_s=3)
        # Another address, and the honest peers on theirs, still get in.
        broker.session("node1", "node1-other-address", source="127.0.0.3").close()
        broker.session("node2", "node2-loopback").close()
    finally:
        for sock in silent:
            sock.close()


def test_connections_past_max_connections_are_closed_at_once(tmp_path: Path) -> None:
    broker = start_broker_process(tmp_path / "broker", broker_test_peers(), max_connections=3)
    try:
        held = [broker.session("node1", f"node1-{index}") for index in range(3)]
        with broker.open() as one_more:
            assert closed_by_peer(one_more, timeout_s=3)
        held.pop().close()
        time.sleep(0.3)  # the broker has seen it go
        broker.session("node2", "node2-in-the-freed-slot").close()
        for sock in held:
            sock.close()
    finally:
        broker.stop()


def test_fifty_nodes_and_a_researcher_connecting_at_once_all_get_in(tmp_path: Path) -> None:
    nodes = [f"node{index}" for index in range(SCALE_NODES)]
    peers = [BrokerPeer("node", n, Secret(f"pw-{n}")) for n in nodes]
    peers.append(BrokerPeer("researcher", "res1", Secret("pw-res1")))
    broker = start_broker_process(tmp_path / "broker", peers)

    def endpoint(peer_id: str) -> BrokerEndpoint:
        return BrokerEndpoint(broker.host, broker.port, peer_id, Secret(f"pw-{peer_id}"), 30)

    def node_channel(node_id: str) -> MqttChannel:
        """Connected, subscribed and present as a node daemon is."""
        channel = MqttChannel(endpoint(node_id), node_id)
        own = [*topics.node_subscriptions(node_id), topics.ADVERT_FILTER]
        for topic_filter in [*own, topics.presence_topic(node_id)]:
            channel.subscribe(topic_filter, lambda topic, payload: None)
        channel.publish(topics.presence_topic(node_id), b"online", retain=True)
        return channel

    try:
        with ThreadPoolExecutor(max_workers=SCALE_NODES) as pool:
            channels = list(pool.map(node_channel, nodes))
        present: set[str] = set()
        researcher = MqttChannel(endpoint("res1"), "res1")
        researcher.subscribe(topics.PRESENCE_FILTER, lambda topic, _: present.add(topic))
        deadline = time.monotonic() + 30
        while len(present) < SCALE_NODES and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(present) == SCALE_NODES
        for channel in [researcher, *channels]:
            channel.close()
    finally:
        broker.stop()
