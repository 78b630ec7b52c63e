"""A node that retains without end: the embedded broker keeps retained messages only where
fedward's protocol retains (node presence), and only small ones.

A node may write ``secagg/+/{node}`` and ``researcher/+/{node}``, ``+`` being any string:
with the retain flag each distinct topic was kept for good, after the node left, and
every SUBSCRIBE by any peer sorted and scanned all of them on the broker's one loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.protocol import topics

from .conftest import broker_test_peers
from .embedded_broker_process import (
    BrokerProcess,
    publish,
    published_until_pong,
    start_broker_process,
    subscribe,
)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    started = start_broker_process(tmp_path / "broker", broker_test_peers())
    yield started
    started.stop()


def test_retained_messages_are_kept_only_on_presence_topics(broker: BrokerProcess) -> None:
    attacker = broker.session("node2", "node2-retains")
    for index in range(50):
        publish(attacker, f"fedward/v1/secagg/r{index}/node2", b"advert", retain=True)
        publish(attacker, f"fedward/v1/researcher/r{index}/node2", b"reply", retain=True)
    publish(attacker, topics.presence_topic("node2"), b"online", retain=True)
    assert published_until_pong(attacker) == []  # all of it handled
    attacker.close()

    node = broker.session("node1", "node1-reads")
    assert subscribe(node, 1, [topics.ADVERT_FILTER]) == [1]
    assert published_until_pong(node) == []
    researcher = broker.session("res1", "res1-reads")
    assert subscribe(researcher, 1, [topics.PRESENCE_FILTER]) == [1]
    assert published_until_pong(researcher) == [(topics.presence_topic("node2"), b"online")]
    assert subscribe(researcher, 2, ["fedward/v1/researcher/res1/+"]) == [1]
    assert published_until_pong(researcher) == []


def test_a_retained_message_not_kept_still_reaches_present_subscribers(
    broker: BrokerProcess,
) -> None:
    node = broker.session("node1", "node1-listens")
    assert subscribe(node, 1, [topics.ADVERT_FILTER]) == [1]
    sender = broker.session("node2", "node2-adverts")
    publish(sender, topics.advert_topic("res1", "node2"), b"keys", retain=True)
    assert published_until_pong(sender) == []
    assert published_until_pong(node) == [(topics.advert_topic("res1", "node2"), b"keys")]


def test_a_presence_too_large_to_decode_is_not_retained(broker: BrokerProcess) -> None:
    node = broker.session("node2", "node2-big-presence")
    publish(node, topics.presence_topic("node2"), b"small", retain=True)
    publish(node, topics.presence_topic("node2"), b"z" * 5000, retain=True)
    assert published_until_pong(node) == []
    researcher = broker.session("res1", "res1-presence")
    assert subscribe(researcher, 1, [topics.PRESENCE_FILTER]) == [1]
    assert published_until_pong(researcher) == [(topics.presence_topic("node2"), b"small")]
