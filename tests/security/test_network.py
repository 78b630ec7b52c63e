"""Class 3: a job has no network. Each attack aims at a listener this test holds open on
the host (loopback, or a Unix socket), and checks the plan got nowhere *and* the listener
heard nothing."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.security.conftest import AttackedNode


@pytest.fixture
def tcp_listener() -> Iterator[socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    yield listener
    listener.close()


def heard_nothing(listener: socket.socket) -> bool:
    try:
        connection = listener.accept()[0] if listener.type == socket.SOCK_STREAM else None
    except TimeoutError:
        return True
    if connection is not None:
        connection.close()
    return False


def test_tcp_to_the_broker_fails(node: AttackedNode) -> None:
    broker = node.federation.broker
    assert broker is not None
    assert node.escaped("tcp", [broker.host, broker.port]) == 0.0


def test_tcp_to_a_loopback_listener_fails(node: AttackedNode, tcp_listener: socket.socket) -> None:
    assert node.escaped("tcp", list(tcp_listener.getsockname())) == 0.0
    assert heard_nothing(tcp_listener)


def test_mptcp_fails(node: AttackedNode, tcp_listener: socket.socket) -> None:
    assert node.escaped("mptcp", list(tcp_listener.getsockname())) == 0.0
    assert heard_nothing(tcp_listener)


def test_udp_carries_nothing_out(node: AttackedNode) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(1.0)
        assert node.escaped("udp", list(listener.getsockname())) == 0.0
        with pytest.raises(TimeoutError):
            listener.recvfrom(100)


@pytest.mark.parametrize("family", ["raw", "packet", "netlink"])
def test_raw_packet_and_netlink_sockets_fail(node: AttackedNode, family: str) -> None:
    assert node.escaped(family) == 0.0


def test_a_unix_socket_on_the_host_is_out_of_reach(node: AttackedNode, tmp_path: Path) -> None:
    path = Path("/tmp") / f"fedward-attack-{secrets.token_hex(4)}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        path.chmod(0o777)
        listener.listen()
        listener.settimeout(0.5)
        try:
            assert node.escaped("unix_path", str(path)) == 0.0
            assert heard_nothing(listener)
        finally:
            path.unlink()


def test_an_abstract_unix_socket_on_the_host_is_out_of_reach(node: AttackedNode) -> None:
    name = f"fedward-attack-{secrets.token_hex(4)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind("\0" + name)
        listener.listen()
        listener.settimeout(0.5)
        assert node.escaped("unix_abstract", name) == 0.0
        assert heard_nothing(listener)


@pytest.mark.parametrize("attack", ["io_uring", "new_user_namespace", "ptrace_parent"])
def test_kernel_interfaces_around_the_sandbox_are_closed(node: AttackedNode, attack: str) -> None:
    assert node.escaped(attack) == 0.0
