"""One client connection to the embedded broker, from CONNECT to the end of its socket.

A session reads packets in a loop and hands the broker-wide decisions (who may connect,
who receives what) to :class:`~fedward.broker.embedded.BrokerCore`. Anything wrong with
the client's bytes ends that session only: the broker keeps serving the others.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from fedward.broker.limits import (
    CONNECT_TIMEOUT_S,
    MAX_CONNECT_BYTES,
    MAX_SUBSCRIPTIONS_PER_SESSION,
    MAX_TOPIC_FILTER_BYTES,
)
from fedward.broker.packets import (
    PINGRESP,
    SUBACK_FAILURE,
    ConnackCode,
    Connect,
    PacketType,
    encode_ack,
    encode_connack,
    encode_publish,
    encode_suback,
    parse_connect,
    parse_packet_id,
    parse_publish,
    parse_subscribe,
    parse_unsubscribe,
    read_packet,
)
from fedward.errors import MalformedPacket
from fedward.protocol.topics import topic_matches

if TYPE_CHECKING:
    from fedward.broker.embedded import BrokerCore

log = logging.getLogger(__name__)

MAX_GRANTED_QOS = 1  # outbound QoS 2 is not implemented; MQTT lets a broker grant less


def subscription_matches(topic_filter: str, topic: str) -> bool:
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False  # MQTT 4.7.2: a leading wildcard never matches a $-topic
    return topic_matches(topic_filter, topic)


class ClientSession:
    def __init__(
        self, core: BrokerCore, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.core = core
        self.reader = reader
        self.writer = writer
        self.client_id = ""
        self.username = ""
        self.connect: Connect | None = None
        self.subscriptions: dict[str, int] = {}
        self._next_packet_id = 0
        self._qos2_received: set[int] = set()
        self._disconnected_cleanly = False
        peer = writer.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) else "?"
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "?"

    async def run(self) -> None:
        slots = self.core.slots
        if not slots.open(self.address):
            log.warning("closed a connection from %s at once: too many connections", self.peer)
            self.kick()
            return
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        registered = False
        in_handshake = True
        try:
            connect = await self._handshake()
            slots.end_handshake(self.address)
            in_handshake = False
            registered = connect is not None
            if connect is not None:
                await self._serve(connect.keepalive_s)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            log.debug("client %s (%s) went away", self.client_id or "?", self.peer)
        except MalformedPacket as exc:
            log.warning("dropping client %s (%s): %s", self.client_id or "?", self.peer, exc)
        except Exception:  # a worker loop: one client's bug must not stop the broker
            log.exception(
                "dropping client %s (%s) after an internal error", self.client_id, self.peer
            )
        finally:
            if in_handshake:
                slots.end_handshake(self.address)
            slots.close()
            if registered:
                self.core.unregister(self, publish_will=not self._disconnected_cleanly)
            self.writer.close()

    def kick(self) -> None:
        """End this connection from outside (session takeover, broker stop)."""
        self.writer.transport.abort()

    def send(self, data: bytes) -> None:
        if self.writer.transport.is_closing():
            return
        if self.writer.transport.get_write_buffer_size() > self.core.max_queued_bytes:
            log.warning("client %s reads too slowly; disconnecting it", self.client_id)
            self.kick()
            return
        self.writer.write(data)

    def deliver(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        packet_id = 0
        if qos:
            self._next_packet_id = self._next_packet_id % 0xFFFF + 1
            packet_id = self._next_packet_id
        self.send(encode_publish(topic, payload, qos, retain, packet_id))

    def granted_qos(self, topic: str) -> int | None:
        """The highest QoS of our subscriptions matching ``topic``; None if none does."""
        best = None
        for topic_filter, qos in self.subscriptions.items():
            if subscription_matches(topic_filter, topic) and (best is None or qos > best):
                best = qos
        return best

    async def _read(
        self, timeout_s: float | None, max_packet_size: int | None = None
    ) -> tuple[PacketType, int, bytes]:
        async with asyncio.timeout(timeout_s):
            limit = max_packet_size or self.core.settings.max_packet_size
            return await read_packet(self.reader, limit)

    async def _handshake(self) -> Connect | None:
        """The accepted CONNECT, or None once a refusal has been sent."""
        # Read before authentication: a small limit, or a stranger makes us buffer 1 MiB.
        kind, _, body = await self._read(CONNECT_TIMEOUT_S, MAX_CONNECT_BYTES)
        if kind != PacketType.CONNECT:
            raise MalformedPacket(f"first packet is {kind.name}, not CONNECT")
        connect = parse_connect(body)
        if connect.protocol_level != 4:
            self.send(encode_connack(ConnackCode.BAD_PROTOCOL_VERSION))
            log.info(
                "refused %s: MQTT protocol level %d, not 4 (3.1.1)",
                self.peer,
                connect.protocol_level,
            )
            return None
        self.connect = connect
        self.client_id = connect.client_id
        code = await self.core.admit(self, connect)
        self.send(encode_connack(code))
        if code != ConnackCode.ACCEPTED:
            log.info("refused client %r (%s): %s", connect.client_id, self.peer, code.name)
            return None
        log.info("client %r connected as %r from %s", self.client_id, self.username, self.peer)
        return connect

    async def _serve(self, keepalive_s: int) -> None:
        # MQTT 3.1.2.10: no packet for 1.5 keepalive periods means the client is gone.
        timeout = keepalive_s * 1.5 if keepalive_s else None
        while True:
            kind, flags, body = await self._read(timeout)
            if kind == PacketType.PUBLISH:
                self._on_publish(flags, body)
            elif kind == PacketType.PUBREL:
                packet_id = parse_packet_id(body)
                self._qos2_received.discard(packet_id)
                self.send(encode_ack(PacketType.PUBCOMP, packet_id))
            elif kind in (PacketType.PUBACK, PacketType.PUBCOMP, PacketType.PUBREC):
                parse_packet_id(body)  # we send QoS <= 1 and do not retransmit
            elif kind == PacketType.SUBSCRIBE:
                self._on_subscribe(body)
            elif kind == PacketType.UNSUBSCRIBE:
                packet_id, filters = parse_unsubscribe(body)
                for topic_filter in filters:
                    self.subscriptions.pop(topic_filter, None)
                self.send(encode_ack(PacketType.UNSUBACK, packet_id))
            elif kind == PacketType.PINGREQ:
                self.send(PINGRESP)
            elif kind == PacketType.DISCONNECT:
                self._disconnected_cleanly = True
                return
            else:
                raise MalformedPacket(f"a client may not send {kind.name}")
            await self.writer.drain()

    def _on_publish(self, flags: int, body: bytes) -> None:
        message = parse_publish(flags, body)
        duplicate = message.qos == 2 and message.packet_id in self._qos2_received
        if not duplicate:
            self.core.publish_from(
                self, message.topic, message.payload, message.qos, message.retain
            )
        if message.qos == 1 and message.packet_id is not None:
            self.send(encode_ack(PacketType.PUBACK, message.packet_id))
        elif message.qos == 2 and message.packet_id is not None:
            self._qos2_received.add(message.packet_id)
            self.send(encode_ack(PacketType.PUBREC, message.packet_id))

    def _on_subscribe(self, body: bytes) -> None:
        packet_id, requests = parse_subscribe(body)
        codes = []
        granted = []
        for topic_filter, requested_qos in requests:
            if not self._may_hold(topic_filter):
                log.info("refused a subscription of client %r: over its limits", self.client_id)
                codes.append(SUBACK_FAILURE)
                continue
            qos = min(requested_qos, MAX_GRANTED_QOS)
            self.subscriptions[topic_filter] = qos
            codes.append(qos)
            granted.append(topic_filter)
        self.send(encode_suback(packet_id, codes))
        for topic_filter in granted:
            self.core.send_retained(self, topic_filter, self.subscriptions[topic_filter])

    def _may_hold(self, topic_filter: str) -> bool:
        # A failure code, not a disconnection: paho would reconnect and subscribe again,
        # for ever; a refused filter makes MqttChannel.subscribe raise instead.
        if len(topic_filter.encode("utf-8")) > MAX_TOPIC_FILTER_BYTES:
            return False
        held = topic_filter in self.subscriptions  # subscribing again replaces it
        return held or len(self.subscriptions) < MAX_SUBSCRIPTIONS_PER_SESSION
