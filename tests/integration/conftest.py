"""Broker fixtures: a real broker on a free loopback port, Mosquitto and the embedded one.

``mqtt_testbed`` is parametrized over both brokers, so a test that takes it runs twice.
Peers: nodes ``node1`` and ``node2``, researchers ``res1`` and ``res2``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fedward.broker.peers import BrokerPeer
from fedward.broker.process import RunningBroker, start_broker
from fedward.config.model import DEFAULT_MAX_MESSAGE_BYTES, BrokerEndpoint, Secret
from fedward.transport.channel import Will
from fedward.transport.mqtt import MqttChannel

NODES = ("node1", "node2")
RESEARCHERS = ("res1", "res2")
BROKER_KINDS = ("mosquitto", "embedded")


def broker_test_peers() -> list[BrokerPeer]:
    peers = [BrokerPeer("node", n, Secret(f"pw-{n}")) for n in NODES]
    return peers + [BrokerPeer("researcher", r, Secret(f"pw-{r}")) for r in RESEARCHERS]


class Inbox:
    """A handler that records messages and lets a test wait for them."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._changed = threading.Condition()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self._changed:
            self.messages.append((topic, payload))
            self._changed.notify_all()

    def wait_for(
        self, predicate: Callable[[list[tuple[str, bytes]]], bool], timeout_s: float = 60.0
    ) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def wait_for_payload(self, payload: bytes, timeout_s: float = 60.0) -> bool:
        return self.wait_for(lambda messages: any(p == payload for _, p in messages), timeout_s)

    def payloads(self) -> list[bytes]:
        with self._changed:
            return [payload for _, payload in self.messages]


@dataclass
class MqttTestbed:
    broker: RunningBroker
    channels: list[MqttChannel] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.broker.kind

    def endpoint(self, peer_id: str, password: str | None = None) -> BrokerEndpoint:
        return self.broker.endpoint(peer_id, password or f"pw-{peer_id}")

    def channel(
        self, peer_id: str, client_id: str | None = None, will: Will | None = None
    ) -> MqttChannel:
        """A connected channel as ``peer_id``; closed at the end of the test."""
        channel = MqttChannel(self.endpoint(peer_id), client_id or f"{peer_id}-test", will=will)
        self.channels.append(channel)
        return channel


@pytest.fixture(params=BROKER_KINDS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def start_test_broker(
    kind: str, workdir: Path, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> RunningBroker:
    return start_broker(
        broker_test_peers(),
        workdir,
        embedded=kind == "embedded",
        max_message_bytes=max_message_bytes,
    )


@pytest.fixture
def mqtt_testbed(broker_kind: str, tmp_path: Path) -> Iterator[MqttTestbed]:
    testbed = MqttTestbed(start_test_broker(broker_kind, tmp_path / "broker"))
    try:
        yield testbed
    finally:
        for channel in testbed.channels:
            channel.close()
        testbed.broker.stop()
