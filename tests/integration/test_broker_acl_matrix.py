"""Every peer x every fedward topic x read/write: the broker does what ``acl_rules`` says.

A privileged observer (added to the rendered files only here) reads everything, so a
write is "allowed" exactly when the observer receives it; each peer also subscribes to
``#`` and must receive exactly the allowed writes it may read.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fedward.broker.passwords import hash_password
from fedward.broker.process import EmbeddedBrokerThread, MosquittoProcess, RunningBroker, free_port
from fedward.broker.render import render_broker_config
from fedward.protocol import topics
from fedward.protocol.topics import acl_rules, topic_matches
from fedward.transport.mqtt import MqttChannel

from .conftest import NODES, RESEARCHERS, Inbox, broker_test_peers

OBSERVER = "observer"
ROLE = {**dict.fromkeys(NODES, "node"), **dict.fromkeys(RESEARCHERS, "researcher")}


def every_topic() -> list[str]:
    result = [topics.broadcast_topic(r) for r in RESEARCHERS]
    result += [topics.node_topic(n, r) for n in NODES for r in RESEARCHERS]
    result += [topics.reply_topic(r, n) for r in RESEARCHERS for n in NODES]
    result += [topics.presence_topic(n) for n in NODES]
    # Secure-aggregation adverts: only the node itself may write its own (no researcher).
    result += [topics.advert_topic(r, n) for r in RESEARCHERS for n in NODES]
    return [*result, "fedward/v1/elsewhere", "not-fedward"]


def allowed(peer_id: str, access: str, topic: str) -> bool:
    return any(
        rule.access in (access, "readwrite") and topic_matches(rule.topic, topic)
        for rule in acl_rules(ROLE[peer_id], peer_id)  # type: ignore[arg-type]
    )


def start_with_observer(kind: str, workdir: Path) -> RunningBroker:
    files = render_broker_config(broker_test_peers(), workdir, "127.0.0.1", free_port())
    with files.passwords.open("a") as passwords:
        passwords.write(f"{OBSERVER}:{hash_password('pw-observer')}\n")
    with files.acl.open("a") as acl:
        acl.write(f"\nuser {OBSERVER}\ntopic read #\n")
    broker = EmbeddedBrokerThread(workdir) if kind == "embedded" else MosquittoProcess(workdir)
    broker.start()
    return broker


def test_broker_enforces_acl_rules_for_every_peer_topic_and_direction(
    broker_kind: str, tmp_path: Path
) -> None:
    broker = start_with_observer(broker_kind, tmp_path / "broker")
    peer_ids = [*NODES, *RESEARCHERS]
    channels: list[MqttChannel] = []
    try:
        observer = MqttChannel(broker.endpoint(OBSERVER, "pw-observer"), OBSERVER)
        channels.append(observer)
        seen_by_observer = Inbox()
        observer.subscribe("#", seen_by_observer)
        inboxes: dict[str, Inbox] = {}
        writers: dict[str, MqttChannel] = {}
        for peer_id in peer_ids:
            channel = MqttChannel(broker.endpoint(peer_id, f"pw-{peer_id}"), f"{peer_id}-matrix")
            channels.append(channel)
            inboxes[peer_id] = Inbox()
            channel.subscribe("#", inboxes[peer_id])
            writers[peer_id] = channel

        for writer_id, channel in writers.items():
            for topic in every_topic():
                channel.publish(topic, f"{writer_id} {topic}".encode())
        for channel in writers.values():
            assert channel.flush(10)

        expected_writes = {
            f"{writer_id} {topic}"
            for writer_id in peer_ids
            for topic in every_topic()
            if allowed(writer_id, "write", topic)
        }
        assert seen_by_observer.wait_for(lambda m: len(m) >= len(expected_writes))
        expected_reads = {
            reader_id: {w for w in expected_writes if allowed(reader_id, "read", w.split()[1])}
            for reader_id in peer_ids
        }
        for reader_id, inbox in inboxes.items():
            assert inbox.wait_for(lambda m, r=reader_id: len(m) >= len(expected_reads[r]))
        time.sleep(0.3)  # room for any delivery that should not happen

        assert {p.decode() for p in seen_by_observer.payloads()} == expected_writes
        for reader_id, inbox in inboxes.items():
            assert {p.decode() for p in inbox.payloads()} == expected_reads[reader_id], reader_id
        for peer_id in peer_ids:  # the matrix is not trivially all-allowed or all-denied
            assert 0 < sum(allowed(peer_id, "write", t) for t in every_topic()) < len(every_topic())
            assert 0 < sum(allowed(peer_id, "read", t) for t in every_topic()) < len(every_topic())
    finally:
        for channel in channels:
            channel.close()
        broker.stop()


@pytest.mark.parametrize("impostor", ["node2", "res2"])
def test_a_peer_cannot_pose_as_another_in_the_reply_topic(
    broker_kind: str, tmp_path: Path, impostor: str
) -> None:
    broker = start_with_observer(broker_kind, tmp_path / "broker")
    try:
        researcher = MqttChannel(broker.endpoint("res1", "pw-res1"), "res1-victim")
        inbox = Inbox()
        researcher.subscribe(topics.researcher_subscriptions("res1")[0], inbox)
        liar = MqttChannel(broker.endpoint(impostor, f"pw-{impostor}"), "liar")
        liar.publish(topics.reply_topic("res1", "node1"), b"forged")
        assert liar.flush(5)
        honest = MqttChannel(broker.endpoint("node1", "pw-node1"), "honest")
        honest.publish(topics.reply_topic("res1", "node1"), b"genuine")

        assert inbox.wait_for_payload(b"genuine")
        time.sleep(0.2)
        assert inbox.payloads() == [b"genuine"]
        for channel in (researcher, liar, honest):
            channel.close()
    finally:
        broker.stop()
