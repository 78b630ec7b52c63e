"""A stranger flooding the embedded broker with wrong passwords.

Every CONNECT costs a PBKDF2 check (an unknown user as much as a known one), and they
were queued without bound: a burst of bad CONNECTs put every honest peer's CONNECT
behind it, past its 10 s connect timeout. Now a few run at once, a bounded number wait
their turn (taken by address in turn, so one flooding address delays an honest peer by
one check), and the rest are told "server unavailable".
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.broker.limits import (
    MAX_HANDSHAKES_PER_ADDRESS,
    MAX_WAITING_PASSWORD_CHECKS,
    PASSWORD_CHECKS_AT_ONCE,
)

from .conftest import broker_test_peers
from .embedded_broker_process import (
    NOT_AUTHORIZED,
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


def flood(broker: BrokerProcess, addresses: list[str], per_address: int) -> list[socket.socket]:
    """Wrong passwords for a real account, from each address: each costs a PBKDF2 check.
    All connections are open before any CONNECT goes, so they arrive in one burst."""
    sockets = [broker.open(address) for address in addresses for _ in range(per_address)]
    for index, sock in enumerate(sockets):
        sock.sendall(raw_connect(f"guess-{index}", "node1", "wrong"))
    return sockets


def test_bad_passwords_past_the_waiting_checks_are_told_server_unavailable(
    broker: BrokerProcess,
) -> None:
    addresses = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    guesses = flood(broker, addresses, MAX_HANDSHAKES_PER_ADDRESS)
    assert len(guesses) > MAX_WAITING_PASSWORD_CHECKS + PASSWORD_CHECKS_AT_ONCE
    answers = []
    for sock in guesses:
        sock.settimeout(30)
        answers.append(read_exactly(sock, 4))
        assert closed_by_peer(sock)
        sock.close()
    assert set(answers) <= {SERVER_UNAVAILABLE, NOT_AUTHORIZED}
    assert answers.count(SERVER_UNAVAILABLE) >= 16
    broker.session("node2", "node2-after-the-flood").close()


def test_an_honest_peer_is_checked_before_a_flood_from_other_addresses(
    broker: BrokerProcess,
) -> None:
    per_address = MAX_WAITING_PASSWORD_CHECKS // 2 - 4  # all of it waits its turn
    guesses = flood(broker, ["127.0.0.2", "127.0.0.3"], per_address)
    broker.session("node2", "node2-in-the-flood", source="127.0.0.4").close()
    answered_before = 0
    for sock in guesses:
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # not answered yet
            answered_before += len(sock.recv(4)) == 4
    # Checks are served in turn by address, so the honest one waited for a handful, not
    # for the whole flood sent before it.
    assert answered_before < len(guesses) // 2, f"{answered_before} of {len(guesses)} first"
    for sock in guesses:
        sock.setblocking(True)
        sock.settimeout(30)
        read_exactly(sock, 4)
        sock.close()
