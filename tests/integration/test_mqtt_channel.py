"""MqttChannel against a real broker on loopback (Mosquitto and the embedded one)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fedward.broker.process import free_port
from fedward.config.model import BrokerEndpoint, Secret
from fedward.errors import AccessDenied, TransportError, ValidationError
from fedward.protocol import topics
from fedward.transport.channel import Will
from fedward.transport.mqtt import MqttChannel

from .conftest import Inbox, MqttTestbed, start_test_broker


def test_request_and_reply_travel_between_researcher_and_node(mqtt_testbed: MqttTestbed) -> None:
    node = mqtt_testbed.channel("node1")
    researcher = mqtt_testbed.channel("res1")
    replies = Inbox()
    node.subscribe(
        topics.node_subscriptions("node1")[1],
        lambda topic, payload: node.publish(topics.reply_topic("res1", "node1"), payload + b"!"),
    )
    researcher.subscribe(topics.researcher_subscriptions("res1")[0], replies)

    researcher.publish(topics.node_topic("node1", "res1"), b"ping")

    assert replies.wait_for_payload(b"ping!")
    assert replies.messages == [(topics.reply_topic("res1", "node1"), b"ping!")]


def test_broadcast_reaches_every_node(mqtt_testbed: MqttTestbed) -> None:
    inboxes = {node_id: Inbox() for node_id in ("node1", "node2")}
    for node_id, inbox in inboxes.items():
        mqtt_testbed.channel(node_id).subscribe(topics.node_subscriptions(node_id)[0], inbox)

    mqtt_testbed.channel("res2").publish(topics.broadcast_topic("res2"), b"search")

    for inbox in inboxes.values():
        assert inbox.wait_for_payload(b"search")


def test_wrong_password_is_access_denied(mqtt_testbed: MqttTestbed) -> None:
    with pytest.raises(AccessDenied, match="refused"):
        MqttChannel(mqtt_testbed.endpoint("node1", "not-the-password"), "intruder")


def test_unknown_user_is_access_denied(mqtt_testbed: MqttTestbed) -> None:
    endpoint = BrokerEndpoint(
        mqtt_testbed.broker.host, mqtt_testbed.broker.port, "nobody", Secret("x")
    )
    with pytest.raises(AccessDenied):
        MqttChannel(endpoint, "nobody")


def test_anonymous_client_is_access_denied(mqtt_testbed: MqttTestbed) -> None:
    endpoint = BrokerEndpoint(mqtt_testbed.broker.host, mqtt_testbed.broker.port)
    with pytest.raises(AccessDenied):
        MqttChannel(endpoint, "anonymous")


def test_unreachable_broker_raises_transport_error_naming_address_and_settings() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(TransportError) as raised:
        MqttChannel(BrokerEndpoint("127.0.0.1", port, "node1", Secret("x")), "lonely")
    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message
    assert "MQTT_BROKER" in message
    assert not isinstance(raised.value, AccessDenied)
    assert time.monotonic() - started < 30  # fails fast rather than retrying forever


def test_subscriptions_are_restored_after_a_broker_restart(mqtt_testbed: MqttTestbed) -> None:
    node = mqtt_testbed.channel("node1")
    researcher = mqtt_testbed.channel("res1")
    inbox = Inbox()
    node.subscribe(topics.node_subscriptions("node1")[1], inbox)

    mqtt_testbed.broker.restart()

    # Clean sessions: whatever is sent before the node has resubscribed is lost, so keep
    # sending until one arrives.
    deadline = time.monotonic() + 60
    delivered = False
    while not delivered and time.monotonic() < deadline:
        researcher.publish(topics.node_topic("node1", "res1"), b"after restart")
        delivered = inbox.wait_for_payload(b"after restart", timeout_s=0.5)
    assert delivered
    assert node.connected and researcher.connected


def test_publish_while_the_broker_is_down_is_queued_not_an_error(
    broker_kind: str, tmp_path: Path
) -> None:
    broker = start_test_broker(broker_kind, tmp_path / "broker")
    try:
        researcher = MqttChannel(broker.endpoint("res1", "pw-res1"), "res1-queue")
        broker.stop()
        deadline = time.monotonic() + 60
        while researcher.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        researcher.publish(topics.broadcast_topic("res1"), b"queued")
        assert not researcher.flush(0.1)
        researcher.close()
    finally:
        broker.stop()


def test_handler_exception_is_logged_and_later_messages_still_arrive(
    mqtt_testbed: MqttTestbed, caplog: pytest.LogCaptureFixture
) -> None:
    node = mqtt_testbed.channel("node1")
    inbox = Inbox()

    def fragile(topic: str, payload: bytes) -> None:
        if payload == b"boom":
            raise RuntimeError("handler bug")
        inbox(topic, payload)

    node.subscribe(topics.node_subscriptions("node1")[1], fragile)
    researcher = mqtt_testbed.channel("res1")
    with caplog.at_level(logging.ERROR, logger="fedward.transport.mqtt"):
        researcher.publish(topics.node_topic("node1", "res1"), b"boom")
        researcher.publish(topics.node_topic("node1", "res1"), b"fine")
        assert inbox.wait_for_payload(b"fine")
    assert "handler bug" in caplog.text


def test_handlers_run_one_at_a_time_in_arrival_order_off_the_network_thread(
    mqtt_testbed: MqttTestbed,
) -> None:
    node = mqtt_testbed.channel("node1")
    inbox = Inbox()
    threads: set[str] = set()

    def record(topic: str, payload: bytes) -> None:
        threads.add(threading.current_thread().name)
        inbox(topic, payload)

    node.subscribe(topics.node_subscriptions("node1")[1], record)
    researcher = mqtt_testbed.channel("res1")
    # More than paho keeps in flight (100), fewer than the broker queues per client (1000):
    # past that a slow subscriber loses QoS 1 messages by design of the rendered config.
    expected = [str(i).encode() for i in range(900)]
    for payload in expected:
        researcher.publish(topics.node_topic("node1", "res1"), payload)

    assert inbox.wait_for(lambda messages: len(messages) >= len(expected), timeout_s=60)
    assert inbox.payloads() == expected
    assert len(threads) == 1 and not any(name.startswith("paho") for name in threads)


def test_retained_presence_reaches_a_later_subscriber(mqtt_testbed: MqttTestbed) -> None:
    node = mqtt_testbed.channel("node1")
    node.publish(topics.presence_topic("node1"), b"online", retain=True)
    assert node.flush(5)

    inbox = Inbox()
    mqtt_testbed.channel("res1").subscribe(topics.PRESENCE_FILTER, inbox)

    assert inbox.wait_for_payload(b"online")
    assert inbox.messages == [(topics.presence_topic("node1"), b"online")]


_DOOMED_CLIENT = """
import sys, time
from fedward.config.model import BrokerEndpoint, Secret
from fedward.transport.channel import Will
from fedward.transport.mqtt import MqttChannel
host, port, topic = sys.argv[1], int(sys.argv[2]), sys.argv[3]
channel = MqttChannel(BrokerEndpoint(host, port, "node2", Secret("pw-node2")), "node2-doomed",
                      will=Will(topic, b"offline", retain=True))
channel.publish(topic, b"online", retain=True)
channel.flush(10)
print("ready", flush=True)
time.sleep(120)
"""


def test_last_will_is_published_when_a_client_is_killed(mqtt_testbed: MqttTestbed) -> None:
    presence = topics.presence_topic("node2")
    inbox = Inbox()
    mqtt_testbed.channel("res1").subscribe(topics.PRESENCE_FILTER, inbox)
    broker = mqtt_testbed.broker
    client = subprocess.Popen(
        [sys.executable, "-c", _DOOMED_CLIENT, broker.host, str(broker.port), presence],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert client.stdout is not None and client.stdout.readline() == b"ready\n"
        assert inbox.wait_for_payload(b"online")
        client.send_signal(signal.SIGKILL)
        assert inbox.wait_for_payload(b"offline")
    finally:
        client.kill()
        client.wait()

    later = Inbox()
    mqtt_testbed.channel("res2").subscribe(presence, later)
    assert later.wait_for_payload(b"offline")  # the will was retained


def test_clean_close_does_not_publish_the_will(mqtt_testbed: MqttTestbed) -> None:
    presence = topics.presence_topic("node1")
    inbox = Inbox()
    mqtt_testbed.channel("res1").subscribe(topics.PRESENCE_FILTER, inbox)
    node = MqttChannel(
        mqtt_testbed.endpoint("node1"), "node1-polite", will=Will(presence, b"offline")
    )
    node.publish(presence, b"bye")
    node.close()
    node.close()

    assert inbox.wait_for_payload(b"bye")
    assert not inbox.wait_for_payload(b"offline", timeout_s=0.5)
    with pytest.raises(TransportError, match="closed"):
        node.publish(presence, b"too late")


def test_channel_sockets_disable_nagle(mqtt_testbed: MqttTestbed) -> None:
    channel = mqtt_testbed.channel("node1")
    sock = channel._client.socket()
    assert isinstance(sock, socket.socket)
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_message_over_the_size_limit_is_dropped(broker_kind: str, tmp_path: Path) -> None:
    broker = start_test_broker(broker_kind, tmp_path / "broker", max_message_bytes=1000)
    node = MqttChannel(broker.endpoint("node1", "pw-node1"), "node1-size")
    researcher = MqttChannel(broker.endpoint("res1", "pw-res1"), "res1-size")
    try:
        inbox = Inbox()
        node.subscribe(topics.node_subscriptions("node1")[1], inbox)
        researcher.publish(topics.node_topic("node1", "res1"), b"x" * 1001)
        researcher.publish(topics.node_topic("node1", "res1"), b"y" * 1000)

        assert inbox.wait_for_payload(b"y" * 1000)
        assert inbox.payloads() == [b"y" * 1000]
        assert researcher.connected
    finally:
        node.close()
        researcher.close()
        broker.stop()


def test_publishing_to_a_wildcard_topic_is_a_validation_error(mqtt_testbed: MqttTestbed) -> None:
    with pytest.raises(ValidationError):
        mqtt_testbed.channel("res1").publish("fedward/v1/node/+/res1", b"x")


def test_a_peer_flooding_its_topic_does_not_delay_another_peer_s_reply(
    mqtt_testbed: MqttTestbed,
) -> None:
    # node2 floods its reply topic with well-formed messages, each costing the researcher
    # a decode; node1's reply, published after the flood, must not wait behind it.
    researcher = mqtt_testbed.channel("res1")
    handled: list[tuple[str, bytes]] = []
    release, node1_seen = threading.Event(), threading.Event()

    def slow_reader(topic: str, payload: bytes) -> None:
        release.wait(timeout=30)  # the backlog builds while the first message is handled
        handled.append((topic, payload))
        if payload == b"node1 reply":
            node1_seen.set()

    researcher.subscribe(topics.researcher_subscriptions("res1")[0], slow_reader)
    flooder, honest = mqtt_testbed.channel("node2"), mqtt_testbed.channel("node1")
    for index in range(800):
        flooder.publish(topics.reply_topic("res1", "node2"), b"flood %d" % index)
    assert flooder.flush(timeout_s=30)  # the broker has the whole flood before node1 speaks
    honest.publish(topics.reply_topic("res1", "node1"), b"node1 reply")
    time.sleep(2)  # every message is in the researcher's inbox by now
    release.set()

    assert node1_seen.wait(timeout=60)
    position = [payload for _, payload in handled].index(b"node1 reply")
    assert position <= 2, f"node1's reply was handled after {position} flood messages"
    flood = [payload for topic, payload in handled if topic.endswith("node2")]
    assert flood == sorted(flood, key=lambda p: int(p.split()[1]))  # its own order kept
