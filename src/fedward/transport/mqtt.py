"""``MqttChannel``: the ``Channel`` contract on paho-mqtt 2.x (the only paho import).

How it keeps the contract:

- MQTT 3.1.1, QoS 1 both ways, persistent sessions (clean session off) under a client id
  unique to this channel. While we are away (a network cut, a broker restart) the broker
  keeps our subscriptions and queues what is published to us, and the rendered Mosquitto
  config saves sessions every second, so even a killed broker comes back with them; a
  session nobody resumes expires after an hour. Every (re)connection still subscribes
  again to everything :meth:`MqttChannel.subscribe` was given (a broker that lost its
  state, or the embedded one, which keeps no sessions).
- paho's network thread only queues incoming messages; one dispatcher thread per channel
  calls the handlers, one at a time. A slow handler therefore never stalls keepalives or
  acknowledgements, and a handler may call ``subscribe`` or ``publish``. A handler's
  exception is logged and the next message is handled. The queue is a ``FairInbox``:
  arrival order within a topic, topics served in turn, a bounded backlog per topic, so
  a peer flooding its own topic delays no other peer's messages.
- Lost connections are retried by paho with exponential backoff (1 s doubling to 30 s).
  ``publish`` never waits for the broker: while disconnected, messages wait in paho's
  queue (up to ``MAX_QUEUED_MESSAGES``) and go out after the reconnection; a full queue
  or a closed channel raises ``TransportError``.
- ``subscribe`` waits for the broker's SUBACK while connected, so a message published by
  anyone after ``subscribe`` returns reaches us; a refused subscription raises
  ``AccessDenied`` (Mosquitto 2.0 grants every subscription and filters each message
  by the ACL instead, so in practice a forbidden filter just stays silent).
- At least once: a message can arrive twice (redelivered after a reconnection, or
  duplicated on the way); receivers make handling idempotent (the node's
  ``RequestLog``, the researcher's one answer per request). What is lost anyway (a
  broker killed between acknowledging a message and saving it) is covered by request
  deadlines.
- TCP_NODELAY on every socket: control messages are small and latency-bound.

A publish that the broker's ACL refuses is acknowledged and dropped by Mosquitto (MQTT
3.1.1 has no way to say "denied"), so it is indistinguishable from one nobody reads:
senders learn of it only through the missing reply and its deadline.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from fedward.config.model import BrokerEndpoint
from fedward.errors import AccessDenied, TransportError, ValidationError
from fedward.protocol.topics import topic_matches
from fedward.transport.channel import Handler, Will
from fedward.transport.fair_inbox import FairInbox

log = logging.getLogger(__name__)

QOS = 1
MAX_QUEUED_MESSAGES = 10_000  # in flight + waiting; bounds memory while disconnected
MAX_INFLIGHT_MESSAGES = 100
RECONNECT_MIN_DELAY_S = 1
RECONNECT_MAX_DELAY_S = 30
CLOSE_FLUSH_S = 2.0
_HINT = "is the broker running? check MQTT_BROKER / MQTT_BROKER_PORT"
_CREDENTIAL_REFUSALS = {"Bad user name or password", "Not authorized"}


class MqttChannel:
    """A connected MQTT client; the constructor returns only once the broker accepted us."""

    def __init__(
        self,
        endpoint: BrokerEndpoint,
        client_id: str,
        will: Will | None = None,
        connect_timeout_s: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.client_id = client_id
        self._address = f"{endpoint.host}:{endpoint.port}"
        self._timeout_s = connect_timeout_s
        self._lock = threading.Condition()
        self._subscriptions: list[tuple[str, Handler]] = []
        self._subacks: dict[int, list[ReasonCode]] = {}  # SUBACKs a subscribe() waits for
        self._unwaited_subacks: set[int] = set()  # SUBACKs nobody waits for
        self._unacked: set[int] = set()  # mids of our publishes not yet acknowledged
        self._early_acks: set[int] = set()  # acknowledged before publish() recorded them
        self._first_connack: ReasonCode | None = None
        self._connected = False
        self._connections = 0  # counts CONNACKs, so waiters notice a reconnection
        self._closed = False
        self._inbox = FairInbox()
        # Our latest retained message per topic (presence): re-published after every
        # reconnection, because a restarted broker without persistence has forgotten it.
        self._retained: dict[str, bytes] = {}
        self._client = self._make_client(endpoint, client_id, will)
        self._dispatcher = threading.Thread(
            target=self._dispatch, name=f"mqtt-dispatch-{client_id}", daemon=True
        )
        self._dispatcher.start()
        try:
            self._connect()
        except BaseException:
            self._shut_down()
            raise

    # -- Channel -------------------------------------------------------------------

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        with self._lock:
            if self._closed:
                raise TransportError(f"MQTT channel {self.client_id} is closed")
            self._subscriptions.append((topic_filter, handler))
        try:
            result, mid = self._client.subscribe(topic_filter, qos=QOS)
        except ValueError as exc:
            self._forget(topic_filter, handler)
            raise ValidationError(f"invalid MQTT topic filter {topic_filter!r}") from exc
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            return  # not connected: on_connect subscribes once we are
        codes = self._wait_for_suback(mid)
        if codes is not None and any(code.is_failure for code in codes):
            self._forget(topic_filter, handler)
            raise AccessDenied(f"the broker refused the subscription to {topic_filter!r}")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if self._closed:
            raise TransportError(f"MQTT channel {self.client_id} is closed")
        if retain:
            with self._lock:
                self._retained[topic] = payload
        try:
            info = self._client.publish(topic, payload, qos=QOS, retain=retain)
        except ValueError as exc:
            raise ValidationError(f"cannot publish to MQTT topic {topic!r}: {exc}") from exc
        if info.rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
                log.debug("not connected to %s; message to %s queued", self._address, topic)
            with self._lock:
                if info.mid in self._early_acks:
                    self._early_acks.discard(info.mid)
                else:
                    self._unacked.add(info.mid)
        else:
            raise TransportError(
                f"cannot publish to {topic!r} via {self._address}: {paho.error_string(info.rc)}",
                hint=f"{MAX_QUEUED_MESSAGES} messages already wait for the broker"
                if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
                else _HINT,
            )

    def close(self) -> None:
        """Send what is pending (up to 2 s), then disconnect cleanly: no will. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.flush(CLOSE_FLUSH_S)
        self._shut_down()

    # -- extras --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    def flush(self, timeout_s: float) -> bool:
        """Wait until the broker acknowledged every publish; False on timeout or disconnect."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._unacked and self._connected:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return not self._unacked

    # -- connection ----------------------------------------------------------------

    def _make_client(
        self, endpoint: BrokerEndpoint, client_id: str, will: Will | None
    ) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=paho.MQTTv311,
        )
        if endpoint.username is not None:
            password = endpoint.password.reveal() if endpoint.password is not None else None
            client.username_pw_set(endpoint.username, password)
        if will is not None:
            client.will_set(will.topic, will.payload, qos=QOS, retain=will.retain)
        client.reconnect_delay_set(RECONNECT_MIN_DELAY_S, RECONNECT_MAX_DELAY_S)
        client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        client.max_inflight_messages_set(MAX_INFLIGHT_MESSAGES)
        client.connect_timeout = self._timeout_s
        client.on_socket_open = self._on_socket_open
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _connect(self) -> None:
        try:
            self._client.connect(self.endpoint.host, self.endpoint.port, self.endpoint.keepalive_s)
        except (OSError, ValueError) as exc:
            raise TransportError(
                f"cannot connect to the MQTT broker at {self._address}: {exc}", hint=_HINT
            ) from exc
        self._client.loop_start()
        deadline = time.monotonic() + self._timeout_s
        with self._lock:
            while self._first_connack is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TransportError(
                        f"the MQTT broker at {self._address} did not answer within "
                        f"{self._timeout_s:g} s",
                        hint=_HINT,
                    )
                self._lock.wait(remaining)
            reason = self._first_connack
        if reason.is_failure:
            message = f"the MQTT broker at {self._address} refused {self.client_id!r}: {reason}"
            if reason.getName() in _CREDENTIAL_REFUSALS:
                raise AccessDenied(message, hint="check the broker username and password file")
            raise TransportError(message)

    def _shut_down(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
        self._inbox.close()
        if threading.current_thread() is not self._dispatcher:
            self._dispatcher.join(timeout=10)

    def _wait_for_suback(self, mid: int) -> list[ReasonCode] | None:
        """SUBACK codes; None if the connection dropped first (on_connect resubscribes)."""
        deadline = time.monotonic() + self._timeout_s
        with self._lock:
            connection = self._connections
            while mid not in self._subacks:
                remaining = deadline - time.monotonic()
                reconnected = self._connections != connection
                if not self._connected or reconnected or self._closed or remaining <= 0:
                    self._unwaited_subacks.add(mid)
                    if remaining <= 0 and self._connected:
                        raise TransportError(
                            f"no SUBACK from the MQTT broker at {self._address}", hint=_HINT
                        )
                    return None
                self._lock.wait(remaining)
            return self._subacks.pop(mid)

    def _forget(self, topic_filter: str, handler: Handler) -> None:
        with self._lock:
            if (topic_filter, handler) in self._subscriptions:
                self._subscriptions.remove((topic_filter, handler))

    # -- paho callbacks (paho's network thread) --------------------------------------

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        with self._lock:
            first = self._first_connack is None
            if first:
                self._first_connack = reason
            if reason.is_failure:
                if not first:
                    log.error(
                        "MQTT broker %s refused %s: %s", self._address, self.client_id, reason
                    )
                self._lock.notify_all()
                return
            filters = sorted({topic_filter for topic_filter, _ in self._subscriptions})
            retained = dict(self._retained) if not first else {}
            self._connected = True
            self._connections += 1
            self._subacks.clear()  # a new connection: no SUBACK of the old one will come
            self._unwaited_subacks.clear()
            self._lock.notify_all()
        if not first:
            log.info("reconnected to MQTT broker %s as %s", self._address, self.client_id)
        for topic, payload in retained.items():
            client.publish(topic, payload, qos=QOS, retain=True)
        if filters:
            # Runs on the network thread, so its SUBACK cannot overtake this bookkeeping.
            _, mid = client.subscribe([(topic_filter, QOS) for topic_filter in filters])
            if mid is not None:
                with self._lock:
                    self._unwaited_subacks.add(mid)

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        with self._lock:
            was_connected, self._connected = self._connected, False
            self._lock.notify_all()
        if was_connected and not self._closed:
            log.warning("lost MQTT broker %s (%s); reconnecting", self._address, reason)

    def _on_subscribe(
        self, client: paho.Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any
    ) -> None:
        with self._lock:
            if mid in self._unwaited_subacks:
                self._unwaited_subacks.discard(mid)
            else:  # a subscribe() waits for it, or will soon
                self._subacks[mid] = codes
                self._lock.notify_all()
        if any(code.is_failure for code in codes):
            log.error("MQTT broker %s refused a subscription of %s", self._address, self.client_id)

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        with self._lock:
            if mid in self._unacked:
                self._unacked.discard(mid)
                self._lock.notify_all()
            else:  # PUBACK overtook publish() returning: let publish() know
                self._early_acks.add(mid)

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._inbox.put(message.topic, bytes(message.payload))

    # -- dispatcher thread -----------------------------------------------------------

    def _dispatch(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            topic, payload = item
            with self._lock:
                handlers = [h for f, h in self._subscriptions if topic_matches(f, topic)]
            for handler in handlers:
                try:
                    handler(topic, payload)
                except Exception:  # a worker loop: one bad message must not stop the others
                    log.exception("handler for %s on %s failed", topic, self.client_id)
