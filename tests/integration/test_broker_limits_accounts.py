"""One account holding many connections to the embedded broker.

Each connection may have 64 MiB waiting for a reader that does not read (Mosquitto's
``max_queued_bytes``), but that bound was per connection: a node opened any number of
non-reading connections, subscribed each to its own presence topic and published there,
and the broker held 64 MiB for each.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.broker.limits import MAX_CONNECTIONS_PER_USERNAME

from .conftest import broker_test_peers
from .embedded_broker_process import (
    SERVER_UNAVAILABLE,
    BrokerProcess,
    read_exactly,
    start_broker_process,
)
from .test_broker_behaviour import closed_by_peer, raw_connect


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    started = start_broker_process(tmp_path / "broker", broker_test_peers())
    yield started
    started.stop()


def test_one_account_cannot_hold_more_connections_than_the_cap(broker: BrokerProcess) -> None:
    held = [
        broker.session("node2", f"node2-{index}") for index in range(MAX_CONNECTIONS_PER_USERNAME)
    ]
    with broker.open() as one_more:
        one_more.sendall(raw_connect("node2-one-more", "node2", "pw-node2"))
        assert read_exactly(one_more, 4) == SERVER_UNAVAILABLE
        assert closed_by_peer(one_more)
    # Other accounts are not affected.
    broker.session("node1", "node1-unaffected").close()
    # Reconnecting under a client id the account holds replaces that connection (a peer
    # whose old connection the broker has not seen die yet): it does not count twice.
    replacement = broker.session("node2", "node2-0")
    assert closed_by_peer(held[0])
    held[1].close()
    time.sleep(0.3)  # the broker has seen it go
    broker.session("node2", "node2-in-the-freed-place").close()
    for sock in [replacement, *held[2:]]:
        sock.close()
