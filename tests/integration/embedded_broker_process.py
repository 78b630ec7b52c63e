"""The embedded broker as its own process, and a raw MQTT client to attack it with.

The broker runs as ``python -m fedward.broker.embedded`` (what ``fedward broker run
--embedded`` runs), so an attack meets the real process: its one event loop, its
sockets, its threads. Strangers come from other loopback addresses (127.0.0.N), which
Linux routes to the same interface, so the broker sees them as distinct hosts.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fedward.broker.packets import PacketType, encode_packet
from fedward.broker.peers import BrokerPeer
from fedward.broker.process import free_port
from fedward.broker.render import render_broker_config

from .test_broker_behaviour import raw_connect

ACCEPTED = b"\x20\x02\x00\x00"
SERVER_UNAVAILABLE = b"\x20\x02\x00\x03"
NOT_AUTHORIZED = b"\x20\x02\x00\x05"
SUBACK_FAILURE = 0x80


@dataclass
class BrokerProcess:
    process: subprocess.Popen[bytes]
    config_dir: Path
    port: int
    host: str = "127.0.0.1"

    def open(self, source: str = "127.0.0.1") -> socket.socket:
        return socket.create_connection(
            (self.host, self.port), timeout=5, source_address=(source, 0)
        )

    def session(self, username: str, client_id: str, source: str = "127.0.0.1") -> socket.socket:
        """A raw connection that the broker accepted as ``username``."""
        sock = self.open(source)
        sock.sendall(raw_connect(client_id, username, f"pw-{username}"))
        assert read_exactly(sock, 4) == ACCEPTED
        return sock

    def log(self) -> str:
        return (self.config_dir / "broker.log").read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_broker_process(
    workdir: Path, peers: list[BrokerPeer], max_connections: int | None = None
) -> BrokerProcess:
    port = free_port()
    extra = {} if max_connections is None else {"max_connections": max_connections}
    render_broker_config(peers, workdir, "127.0.0.1", port, **extra)
    with (workdir / "broker.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "fedward.broker.embedded", "--config-dir", str(workdir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    broker = BrokerProcess(process, workdir, port)
    deadline = time.monotonic() + 30
    while "listening on" not in broker.log():  # no probe connection: it would use a slot
        if process.poll() is not None or time.monotonic() > deadline:
            broker.stop()
            raise AssertionError(f"the embedded broker did not start:\n{broker.log()}")
        time.sleep(0.05)
    return broker


def read_exactly(sock: socket.socket, count: int) -> bytes:
    """``count`` bytes, or fewer if the broker closes the connection first."""
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return data
        data += chunk
    return data


def read_packet(sock: socket.socket) -> tuple[int, bytes]:
    """(packet type, body) of the next packet from the broker."""
    first = read_exactly(sock, 1)[0]
    length, shift = 0, 0
    while True:
        byte = read_exactly(sock, 1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return first >> 4, read_exactly(sock, length)


def text(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw


def subscribe(sock: socket.socket, packet_id: int, filters: list[str]) -> list[int]:
    """The SUBACK return codes, one per filter."""
    body = struct.pack("!H", packet_id) + b"".join(text(f) + b"\x01" for f in filters)
    sock.sendall(encode_packet(PacketType.SUBSCRIBE, 2, body))
    while True:
        kind, answer = read_packet(sock)
        if kind == PacketType.SUBACK:
            assert answer[:2] == struct.pack("!H", packet_id)
            return list(answer[2:])


def publish(sock: socket.socket, topic: str, payload: bytes, *, retain: bool) -> None:
    sock.sendall(encode_packet(PacketType.PUBLISH, int(retain), text(topic) + payload))


def published_until_pong(sock: socket.socket) -> list[tuple[str, bytes]]:
    """What the broker sends us before answering a PINGREQ sent now (it answers in order)."""
    sock.sendall(encode_packet(PacketType.PINGREQ, 0, b""))
    received = []
    while True:
        kind, body = read_packet(sock)
        if kind == PacketType.PINGRESP:
            return received
        if kind == PacketType.PUBLISH:
            length = struct.unpack("!H", body[:2])[0]
            received.append((body[2 : 2 + length].decode(), body[2 + length :]))
