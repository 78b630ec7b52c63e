"""Broker behaviour fedward relies on, checked on Mosquitto and the embedded broker alike."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from pathlib import Path

import pytest

from fedward.broker.packets import PacketType, encode_packet
from fedward.broker.peers import BrokerPeer
from fedward.broker.render import render_broker_config
from fedward.config.model import Secret
from fedward.errors import AccessDenied
from fedward.protocol import topics
from fedward.transport.mqtt import MqttChannel

from .conftest import Inbox, MqttTestbed, broker_test_peers, start_test_broker


def _text(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw


def raw_connect(
    client_id: str,
    username: str,
    password: str,
    keepalive_s: int = 60,
    will: tuple[str, bytes] | None = None,
    level: int = 4,
    clean_session: bool = True,
) -> bytes:
    flags = (0x02 if clean_session else 0) | 0x80 | 0x40
    payload = _text(client_id)
    if will is not None:
        flags |= 0x04 | 0x08 | 0x20  # will, QoS 1, retained
        payload += _text(will[0]) + struct.pack("!H", len(will[1])) + will[1]
    payload += _text(username) + _text(password)
    body = _text("MQTT") + bytes([level, flags]) + struct.pack("!H", keepalive_s) + payload
    return encode_packet(PacketType.CONNECT, 0, body)


def open_raw(testbed: MqttTestbed) -> socket.socket:
    return socket.create_connection((testbed.broker.host, testbed.broker.port), timeout=5)


def closed_by_peer(sock: socket.socket, timeout_s: float = 5.0) -> bool:
    """True once the broker has closed the connection (reads until EOF)."""
    sock.settimeout(timeout_s)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def assert_still_serving(testbed: MqttTestbed, marker: bytes) -> None:
    inbox = Inbox()
    testbed.channel("node1", client_id=f"check-{marker.decode()}").subscribe(
        topics.node_subscriptions("node1")[1], inbox
    )
    testbed.channel("res1", client_id=f"send-{marker.decode()}").publish(
        topics.node_topic("node1", "res1"), marker
    )
    assert inbox.wait_for_payload(marker)


def test_garbage_bytes_drop_that_client_and_the_broker_keeps_serving(
    mqtt_testbed: MqttTestbed,
) -> None:
    for index, garbage in enumerate(
        [
            b"\x00\x00\x00\x00",  # packet type 0
            b"GET / HTTP/1.1\r\n\r\n",  # not MQTT at all
            b"\x10\xff\xff\xff\xff\x7f",  # remaining length of 5 bytes
            b"\x30\x03\x00\x01a",  # PUBLISH before CONNECT
        ]
    ):
        with open_raw(mqtt_testbed) as sock:
            sock.sendall(garbage)
            assert closed_by_peer(sock), garbage
        assert_still_serving(mqtt_testbed, f"alive{index}".encode())


@pytest.mark.parametrize(
    "malformed",
    [
        b"\x82\x04\x00\x01\x00\x00",  # SUBSCRIBE with an empty filter and no QoS
        b"\xa2\x09\x00\x02\x00\x05a/#/b",  # UNSUBSCRIBE with '#' before the last level
    ],
    ids=["subscribe-empty-filter", "unsubscribe-invalid-filter"],
)
def test_malformed_packet_after_connect_drops_the_client_and_publishes_its_will(
    mqtt_testbed: MqttTestbed, malformed: bytes
) -> None:
    presence = topics.presence_topic("node2")
    inbox = Inbox()
    mqtt_testbed.channel("res1").subscribe(topics.PRESENCE_FILTER, inbox)
    with open_raw(mqtt_testbed) as sock:
        sock.sendall(raw_connect("node2-raw", "node2", "pw-node2", will=(presence, b"gone")))
        assert sock.recv(4) == b"\x20\x02\x00\x00"  # CONNACK accepted
        sock.sendall(malformed)
        assert closed_by_peer(sock)
    assert inbox.wait_for_payload(b"gone")
    assert_still_serving(mqtt_testbed, b"after-malformed")


def test_client_silent_past_its_keepalive_is_dropped_and_its_will_published(
    mqtt_testbed: MqttTestbed,
) -> None:
    presence = topics.presence_topic("node2")
    inbox = Inbox()
    mqtt_testbed.channel("res1").subscribe(topics.PRESENCE_FILTER, inbox)
    with open_raw(mqtt_testbed) as sock:
        sock.sendall(raw_connect("node2-mute", "node2", "pw-node2", 1, will=(presence, b"mute")))
        assert sock.recv(4) == b"\x20\x02\x00\x00"
        assert inbox.wait_for_payload(b"mute", timeout_s=15)


def test_empty_retained_message_clears_the_retained_presence(mqtt_testbed: MqttTestbed) -> None:
    node = mqtt_testbed.channel("node1")
    node.publish(topics.presence_topic("node1"), b"online", retain=True)
    node.publish(topics.presence_topic("node1"), b"", retain=True)
    assert node.flush(5)

    inbox = Inbox()
    mqtt_testbed.channel("res1").subscribe(topics.PRESENCE_FILTER, inbox)
    node.publish(topics.presence_topic("node1"), b"fresh")
    assert inbox.wait_for_payload(b"fresh")
    assert inbox.payloads() == [b"fresh"]


def test_reload_applies_a_re_rendered_peer_list(mqtt_testbed: MqttTestbed) -> None:
    broker = mqtt_testbed.broker
    peers = [p for p in broker_test_peers() if p.peer_id != "node2"]
    peers.append(BrokerPeer("node", "node3", Secret("pw-node3")))
    render_broker_config(peers, broker.files.conf.parent, broker.host, broker.port)

    broker.reload()

    deadline = time.monotonic() + 60
    while True:  # Mosquitto reloads on SIGHUP, asynchronously
        try:
            newcomer = MqttChannel(broker.endpoint("node3", "pw-node3"), "node3")
            break
        except AccessDenied:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    newcomer.close()
    try:
        MqttChannel(broker.endpoint("node2", "pw-node2"), "node2-removed").close()
        raise AssertionError("a removed peer could still connect")
    except AccessDenied:
        pass


def test_qos2_publish_is_delivered_once_even_when_resent(mqtt_testbed: MqttTestbed) -> None:
    inbox = Inbox()
    mqtt_testbed.channel("node1").subscribe(topics.node_subscriptions("node1")[1], inbox)
    topic = topics.node_topic("node1", "res1").encode()
    publish_body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", 7) + b"exactly once"
    with open_raw(mqtt_testbed) as sock:
        sock.sendall(raw_connect("res1-qos2", "res1", "pw-res1"))
        assert sock.recv(4) == b"\x20\x02\x00\x00"
        sock.sendall(encode_packet(PacketType.PUBLISH, 0x04, publish_body))
        assert sock.recv(4) == b"\x50\x02\x00\x07"  # PUBREC
        sock.sendall(encode_packet(PacketType.PUBLISH, 0x0C, publish_body))  # DUP resend
        assert sock.recv(4) == b"\x50\x02\x00\x07"
        sock.sendall(encode_packet(PacketType.PUBREL, 0x02, struct.pack("!H", 7)))
        assert sock.recv(4) == b"\x70\x02\x00\x07"  # PUBCOMP
    assert inbox.wait_for_payload(b"exactly once")
    time.sleep(0.2)
    assert inbox.payloads() == [b"exactly once"]


def test_packet_over_the_size_limit_disconnects_its_sender(
    broker_kind: str, tmp_path: Path
) -> None:
    broker = start_test_broker(broker_kind, tmp_path / "broker", max_message_bytes=1000)
    try:
        topic = topics.node_topic("node1", "res1").encode()
        body = struct.pack("!H", len(topic)) + topic + struct.pack("!H", 1) + b"z" * 20_000
        with socket.create_connection((broker.host, broker.port), timeout=5) as sock:
            sock.sendall(raw_connect("res1-huge", "res1", "pw-res1"))
            assert sock.recv(4) == b"\x20\x02\x00\x00"
            with contextlib.suppress(ConnectionError):
                sock.sendall(encode_packet(PacketType.PUBLISH, 0x02, body))
            assert closed_by_peer(sock)
    finally:
        broker.stop()
