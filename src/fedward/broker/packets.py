"""MQTT 3.1.1 packets: the subset the embedded broker speaks, read and written as bytes.

Every parse function takes a packet's body and raises :class:`MalformedPacket` on any
violation of the specification it can see; the broker then drops that client only.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from enum import IntEnum

from fedward.errors import MalformedPacket


class PacketType(IntEnum):
    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14


class ConnackCode(IntEnum):
    ACCEPTED = 0
    BAD_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    NOT_AUTHORIZED = 5


# Fixed-header flags that the specification requires; PUBLISH carries its own.
_REQUIRED_FLAGS = {PacketType.PUBREL: 2, PacketType.SUBSCRIBE: 2, PacketType.UNSUBSCRIBE: 2}


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True)
class Connect:
    client_id: str
    clean_session: bool
    keepalive_s: int
    username: str | None
    password: str | None
    will: Will | None
    protocol_level: int


@dataclass(frozen=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    packet_id: int | None


async def read_packet(
    reader: asyncio.StreamReader, max_packet_size: int
) -> tuple[PacketType, int, bytes]:
    """(type, flags, body) of the next packet; IncompleteReadError at end of stream."""
    first = (await reader.readexactly(1))[0]
    length = 0
    header_bytes = 1
    for shift in (0, 7, 14, 21):
        byte = (await reader.readexactly(1))[0]
        header_bytes += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
    else:
        raise MalformedPacket("remaining length longer than 4 bytes")
    if header_bytes + length > max_packet_size:
        raise MalformedPacket(f"packet of {length} bytes is over the {max_packet_size} limit")
    try:
        kind = PacketType(first >> 4)
    except ValueError as exc:
        raise MalformedPacket(f"unknown packet type {first >> 4}") from exc
    flags = first & 0x0F
    if kind != PacketType.PUBLISH and flags != _REQUIRED_FLAGS.get(kind, 0):
        raise MalformedPacket(f"{kind.name} with reserved flags {flags:#x}")
    return kind, flags, await reader.readexactly(length)


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, count: int) -> bytes:
        if self.offset + count > len(self.data):
            raise MalformedPacket("packet shorter than its fields")
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def uint16(self) -> int:
        value: int = struct.unpack("!H", self.take(2))[0]
        return value

    def binary(self) -> bytes:
        return self.take(self.uint16())

    def text(self) -> str:
        raw = self.binary()
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedPacket("string is not UTF-8") from exc
        if "\x00" in value:
            raise MalformedPacket("string contains U+0000")
        return value

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.offset)

    @property
    def exhausted(self) -> bool:
        return self.offset >= len(self.data)


def parse_connect(body: bytes) -> Connect:
    data = _Body(body)
    protocol_name = data.text()
    level = data.take(1)[0]
    flags = data.take(1)[0]
    keepalive = data.uint16()
    if protocol_name not in ("MQTT", "MQIsdp") or flags & 0x01:
        raise MalformedPacket(f"not an MQTT CONNECT (protocol {protocol_name!r})")
    client_id = data.text()
    will = None
    will_qos = (flags >> 3) & 0x03
    if flags & 0x04:
        if will_qos > 2:
            raise MalformedPacket("will QoS 3")
        will_topic = data.text()
        check_topic_name(will_topic)
        will = Will(will_topic, data.binary(), will_qos, bool(flags & 0x20))
    elif will_qos or flags & 0x20:
        raise MalformedPacket("will QoS or retain set without a will")
    username = data.text() if flags & 0x80 else None
    password = None
    if flags & 0x40:
        try:
            password = data.binary().decode("utf-8")
        except UnicodeDecodeError:
            password = None  # not one of ours: authentication fails below
    return Connect(client_id, bool(flags & 0x02), keepalive, username, password, will, level)


def parse_publish(flags: int, body: bytes) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    data = _Body(body)
    topic = data.text()
    check_topic_name(topic)
    packet_id = data.uint16() if qos else None
    if packet_id == 0:
        raise MalformedPacket("packet id 0")
    return Publish(topic, data.rest(), qos, bool(flags & 0x01), packet_id)


def parse_subscribe(body: bytes) -> tuple[int, list[tuple[str, int]]]:
    data = _Body(body)
    packet_id = data.uint16()
    requests = []
    while not data.exhausted:
        topic_filter = data.text()
        check_topic_filter(topic_filter)
        options = data.take(1)[0]
        if options & 0xFC or options & 0x03 == 3:
            raise MalformedPacket(f"subscription options {options:#x}")
        requests.append((topic_filter, options))
    if not requests:
        raise MalformedPacket("SUBSCRIBE without a topic filter")
    return packet_id, requests


def parse_unsubscribe(body: bytes) -> tuple[int, list[str]]:
    data = _Body(body)
    packet_id = data.uint16()
    filters = []
    while not data.exhausted:
        topic_filter = data.text()
        check_topic_filter(topic_filter)  # as SUBSCRIBE: Mosquitto too closes the connection
        filters.append(topic_filter)
    if not filters:
        raise MalformedPacket("UNSUBSCRIBE without a topic filter")
    return packet_id, filters


def parse_packet_id(body: bytes) -> int:
    if len(body) != 2:
        raise MalformedPacket("acknowledgement of the wrong length")
    return _Body(body).uint16()


def check_topic_name(topic: str) -> None:
    if not topic or "+" in topic or "#" in topic:
        raise MalformedPacket(f"invalid topic name {topic!r}")


def check_topic_filter(topic_filter: str) -> None:
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if ("#" in level and (level != "#" or index != len(levels) - 1)) or (
            "+" in level and level != "+"
        ):
            raise MalformedPacket(f"invalid topic filter {topic_filter!r}")
    if not topic_filter:
        raise MalformedPacket("empty topic filter")


def encode_packet(kind: PacketType, flags: int, body: bytes) -> bytes:
    length = len(body)
    header = bytearray([(kind << 4) | flags])
    while True:
        byte = length & 0x7F
        length >>= 7
        header.append(byte | (0x80 if length else 0))
        if not length:
            break
    return bytes(header) + body


def encode_connack(code: ConnackCode, session_present: bool = False) -> bytes:
    return encode_packet(PacketType.CONNACK, 0, bytes([int(session_present), code]))


def encode_publish(topic: str, payload: bytes, qos: int, retain: bool, packet_id: int) -> bytes:
    raw_topic = topic.encode("utf-8")
    body = struct.pack("!H", len(raw_topic)) + raw_topic
    if qos:
        body += struct.pack("!H", packet_id)
    return encode_packet(PacketType.PUBLISH, (qos << 1) | int(retain), body + payload)


def encode_ack(kind: PacketType, packet_id: int) -> bytes:
    """PUBACK, PUBREC, PUBCOMP or UNSUBACK."""
    return encode_packet(kind, 0, struct.pack("!H", packet_id))


SUBACK_FAILURE = 0x80
"""The SUBACK return code of a refused topic filter (MQTT 3.1.1, 3.9.3)."""


def encode_suback(packet_id: int, codes: list[int]) -> bytes:
    return encode_packet(PacketType.SUBACK, 0, struct.pack("!H", packet_id) + bytes(codes))


PINGRESP = encode_packet(PacketType.PINGRESP, 0, b"")
