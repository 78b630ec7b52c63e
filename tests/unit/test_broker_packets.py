"""MQTT 3.1.1 packet parsing of the embedded broker: valid packets parse, the rest raise."""

from __future__ import annotations

import asyncio
import struct

import pytest

from fedward.broker.packets import (
    PacketType,
    check_topic_filter,
    encode_packet,
    encode_publish,
    parse_connect,
    parse_publish,
    parse_subscribe,
    parse_unsubscribe,
    read_packet,
)
from fedward.errors import MalformedPacket


def text(value: str) -> bytes:
    raw = value.encode()
    return struct.pack("!H", len(raw)) + raw


def read(data: bytes, max_packet_size: int = 1 << 20) -> tuple[PacketType, int, bytes]:
    async def go() -> tuple[PacketType, int, bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_packet(reader, max_packet_size)

    return asyncio.run(go())


def connect_body(flags: int, payload: bytes, level: int = 4) -> bytes:
    return text("MQTT") + bytes([level, flags]) + struct.pack("!H", 30) + payload


def test_connect_with_credentials_and_will_parses() -> None:
    payload = text("client") + text("will/topic") + text("bye") + text("user") + text("pw")
    connect = parse_connect(connect_body(0x02 | 0x04 | 0x08 | 0x20 | 0x80 | 0x40, payload))
    assert (connect.client_id, connect.username, connect.password) == ("client", "user", "pw")
    assert connect.clean_session and connect.keepalive_s == 30
    assert connect.will is not None
    assert (connect.will.topic, connect.will.payload, connect.will.qos) == ("will/topic", b"bye", 1)
    assert connect.will.retain


@pytest.mark.parametrize(
    "body",
    [
        text("HTTP") + bytes([4, 2]) + b"\x00\x1e" + text("c"),  # wrong protocol name
        connect_body(0x03, text("c")),  # reserved flag bit set
        connect_body(0x02 | 0x18, text("c")),  # will QoS without a will
        connect_body(0x02 | 0x04 | 0x18, text("c") + text("t") + text("p")),  # will QoS 3
        connect_body(0x02 | 0x04, text("c") + text("bad/+") + text("p")),  # wildcard will topic
        connect_body(0x02 | 0x80, text("c")),  # username flag, no username
        connect_body(0x02, b"\x00\x05ab"),  # string shorter than its length
        connect_body(0x02, text("c\x00d")),  # NUL in a string
        connect_body(0x02, b"\x00\x02\xff\xfe"),  # not UTF-8
    ],
)
def test_malformed_connect_raises(body: bytes) -> None:
    with pytest.raises(MalformedPacket):
        parse_connect(body)


def test_publish_round_trips_through_encode_and_parse() -> None:
    packet = encode_publish("a/b", b"payload", qos=1, retain=True, packet_id=42)
    kind, flags, body = read(packet)
    assert kind == PacketType.PUBLISH
    message = parse_publish(flags, body)
    assert (message.topic, message.payload, message.qos, message.retain, message.packet_id) == (
        "a/b",
        b"payload",
        1,
        True,
        42,
    )


@pytest.mark.parametrize(
    ("flags", "body"),
    [
        (0x06, text("a") + b"\x00\x01"),  # QoS 3
        (0x02, text("a") + b"\x00\x00"),  # packet id 0
        (0x00, text("a/#")),  # wildcard in a topic name
        (0x00, text("")),  # empty topic
        (0x02, text("a")),  # QoS 1 without a packet id
    ],
)
def test_malformed_publish_raises(flags: int, body: bytes) -> None:
    with pytest.raises(MalformedPacket):
        parse_publish(flags, body)


def test_subscribe_and_unsubscribe_parse() -> None:
    packet_id, requests = parse_subscribe(b"\x00\x07" + text("a/+") + b"\x01" + text("#") + b"\x00")
    assert (packet_id, requests) == (7, [("a/+", 1), ("#", 0)])
    assert parse_unsubscribe(b"\x00\x08" + text("a/+")) == (8, ["a/+"])


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x07",
        b"\x00\x07" + text("a") + b"\x03",
        b"\x00\x07" + text("a") + b"\x04",
        b"\x00\x07" + text("a"),
    ],
)
def test_malformed_subscribe_raises(body: bytes) -> None:
    with pytest.raises(MalformedPacket):
        parse_subscribe(body)


@pytest.mark.parametrize(
    "body",
    [
        b"\x00\x08",
        b"\x00\x08" + text("a/#/b"),
        b"\x00\x08" + text("a") + text("b+"),
        b"\x00\x08" + text(""),
    ],
)
def test_malformed_unsubscribe_raises(body: bytes) -> None:
    with pytest.raises(MalformedPacket):
        parse_unsubscribe(body)


@pytest.mark.parametrize("topic_filter", ["a/#/b", "a#", "a/b+", "", "+a"])
def test_invalid_topic_filters_raise(topic_filter: str) -> None:
    with pytest.raises(MalformedPacket):
        check_topic_filter(topic_filter)


@pytest.mark.parametrize("topic_filter", ["#", "+", "a/+/c", "a/#", "+/+"])
def test_valid_topic_filters_pass(topic_filter: str) -> None:
    check_topic_filter(topic_filter)


@pytest.mark.parametrize("length", [0, 127, 128, 16_383, 16_384, 2_097_152])
def test_remaining_length_encoding_round_trips(length: int) -> None:
    body = b"x" * length
    kind, _, parsed = read(encode_packet(PacketType.PUBLISH, 0, body), max_packet_size=1 << 22)
    assert kind == PacketType.PUBLISH and parsed == body


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00",  # type 0
        b"\xf0\x00",  # type 15
        b"\x80\x00",  # SUBSCRIBE without its required flags
        b"\x31\xff\xff\xff\xff\x01",  # 5-byte remaining length
    ],
)
def test_malformed_fixed_header_raises(data: bytes) -> None:
    with pytest.raises(MalformedPacket):
        read(data)


def test_packet_over_the_size_limit_raises_before_its_body_is_read() -> None:
    with pytest.raises(MalformedPacket, match="limit"):
        read(b"\x30\xff\xff\x03", max_packet_size=1000)


def test_truncated_packet_is_an_incomplete_read() -> None:
    with pytest.raises(asyncio.IncompleteReadError):
        read(b"\x30\x05\x00\x01a")
