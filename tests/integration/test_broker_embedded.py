"""What only the embedded broker does (its documented differences from Mosquitto)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.broker.process import RunningBroker
from fedward.protocol import topics
from fedward.transport.channel import Will
from fedward.transport.mqtt import MqttChannel

from .conftest import Inbox, start_test_broker
from .test_broker_behaviour import closed_by_peer, raw_connect


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[RunningBroker]:
    broker = start_test_broker("embedded", tmp_path / "broker")
    yield broker
    broker.stop()


def connack(broker: RunningBroker, packet: bytes) -> bytes:
    with socket.create_connection((broker.host, broker.port), timeout=5) as sock:
        sock.sendall(packet)
        answer = sock.recv(4)
        assert closed_by_peer(sock)
        return answer


def test_mqtt5_connect_is_refused_as_unsupported_protocol(embedded: RunningBroker) -> None:
    assert connack(embedded, raw_connect("v5", "node1", "pw-node1", level=5)) == b"\x20\x02\x00\x01"


def test_empty_client_id_is_accepted_for_a_clean_session_only(embedded: RunningBroker) -> None:
    with socket.create_connection((embedded.host, embedded.port), timeout=5) as sock:
        sock.sendall(raw_connect("", "node1", "pw-node1"))
        assert sock.recv(4) == b"\x20\x02\x00\x00"
    lasting = raw_connect("", "node1", "pw-node1", clean_session=False)
    assert connack(embedded, lasting) == b"\x20\x02\x00\x02"


def test_client_id_held_by_another_user_is_rejected(embedded: RunningBroker) -> None:
    holder = MqttChannel(embedded.endpoint("node1", "pw-node1"), "shared-id")
    try:
        answer = connack(embedded, raw_connect("shared-id", "node2", "pw-node2"))
        assert answer == b"\x20\x02\x00\x02"
        assert holder.connected
    finally:
        holder.close()


def test_same_user_reconnecting_with_its_client_id_replaces_the_old_connection(
    embedded: RunningBroker,
) -> None:
    presence = topics.presence_topic("node1")
    watcher = MqttChannel(embedded.endpoint("res1", "pw-res1"), "watcher")
    inbox = Inbox()
    watcher.subscribe(topics.PRESENCE_FILTER, inbox)
    old = MqttChannel(embedded.endpoint("node1", "pw-node1"), "node1", will=Will(presence, b"old"))
    with socket.create_connection((embedded.host, embedded.port), timeout=5) as sock:
        sock.sendall(raw_connect("node1", "node1", "pw-node1"))
        assert sock.recv(4) == b"\x20\x02\x00\x00"
        assert inbox.wait_for_payload(b"old")
    old.close()
    watcher.close()
