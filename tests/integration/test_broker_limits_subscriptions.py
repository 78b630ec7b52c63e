"""An account that subscribes without end: the embedded broker caps its topic filters.

Each SUBSCRIBE used to add filters for good, and every message anyone publishes is
matched against every filter of every session: one node with 400,000 filters slowed
every other peer's messages and grew the broker by what it sent.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.broker.limits import MAX_SUBSCRIPTIONS_PER_SESSION, MAX_TOPIC_FILTER_BYTES
from fedward.broker.packets import PacketType, encode_packet
from fedward.protocol import topics

from .conftest import broker_test_peers
from .embedded_broker_process import (
    SUBACK_FAILURE,
    BrokerProcess,
    published_until_pong,
    read_packet,
    start_broker_process,
    subscribe,
    text,
)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    started = start_broker_process(tmp_path / "broker", broker_test_peers())
    yield started
    started.stop()


def test_filters_past_the_session_cap_are_refused_and_the_session_goes_on(
    broker: BrokerProcess,
) -> None:
    sock = broker.session("node2", "node2-many-filters")
    extra = 8
    filters = [f"x/{index}" for index in range(MAX_SUBSCRIPTIONS_PER_SESSION + extra)]
    granted = [1] * MAX_SUBSCRIPTIONS_PER_SESSION
    assert subscribe(sock, 1, filters) == granted + [SUBACK_FAILURE] * extra
    # A filter held already is granted again (it replaces itself); a new one is not.
    assert subscribe(sock, 2, [filters[0], "x/new"]) == [1, SUBACK_FAILURE]
    sock.sendall(encode_packet(PacketType.UNSUBSCRIBE, 2, struct.pack("!H", 3) + text("x/1")))
    assert read_packet(sock)[0] == PacketType.UNSUBACK
    assert subscribe(sock, 4, ["x/new"]) == [1]
    assert published_until_pong(sock) == []  # still connected
    sock.close()


def test_a_filter_longer_than_the_limit_is_refused(broker: BrokerProcess) -> None:
    sock = broker.session("node2", "node2-long-filter")
    too_long = "x/" + "y" * MAX_TOPIC_FILTER_BYTES
    longest = "x/" + "y" * (MAX_TOPIC_FILTER_BYTES - 2)
    assert subscribe(sock, 1, [too_long, longest]) == [SUBACK_FAILURE, 1]
    sock.close()


def test_every_subscription_of_fedward_peers_fits_the_caps_with_room() -> None:
    node = [
        *topics.node_subscriptions("n" * 64),
        topics.ADVERT_FILTER,
        topics.presence_topic("n" * 64),
    ]
    researcher = [*topics.researcher_subscriptions("r" * 64), topics.PRESENCE_FILTER]
    assert len(node) * 4 <= MAX_SUBSCRIPTIONS_PER_SESSION
    assert all(len(f.encode()) * 2 <= MAX_TOPIC_FILTER_BYTES for f in node + researcher)
