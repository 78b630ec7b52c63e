"""The broker and the upload server, used through WireGuard with each peer's own folder."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from lab_harness import Lab
from tests.waiting import eventually

from fedward.protocol.topics import (
    PREFIX,
    acl_rules,
    broadcast_topic,
    node_topic,
    presence_topic,
    reply_topic,
    topic_matches,
)

pytestmark = pytest.mark.root
RESEARCHER = "researcher1"
NODES = ["node1", "node2", "node3"]


def _identity(component: str) -> tuple[str, str]:
    return ("researcher", RESEARCHER) if component == "researcher" else ("node", component)


def _may(component: str, access: str, topic: str) -> bool:
    role, peer_id = _identity(component)
    return any(
        rule.access in (access, "readwrite") and topic_matches(rule.topic, topic)
        for rule in acl_rules(role, peer_id)  # type: ignore[arg-type]
    )


def _topics() -> list[str]:
    topics = [broadcast_topic(RESEARCHER), broadcast_topic("node1")]  # the latter is spoofed
    for node in NODES:
        topics += [node_topic(node, RESEARCHER), reply_topic(RESEARCHER, node)]
        topics += [presence_topic(node), node_topic(node, "node2")]
    return [*topics, f"{PREFIX}/other", "elsewhere/topic"]


def _ours(received: object, topics: list[str]) -> list[str]:
    """The probes' own messages (node daemons of the lab may publish too, e.g. presence)."""
    assert isinstance(received, list)
    return sorted(m for m in received if m.partition("|")[2] in topics)


def _send(process: subprocess.Popen[str], command: object) -> dict[str, object]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(command) + "\n")
    process.stdin.flush()
    answer: dict[str, object] = json.loads(process.stdout.readline())
    return answer


def test_acl_matrix_of_the_real_mosquitto_matches_the_policy(lab: Lab) -> None:
    """Every peer x topic x read/write: a message from P on T reaches S exactly when the
    policy lets P write T and S read T (every peer subscribes to everything)."""
    components = ["researcher", *NODES]
    topics = _topics()
    probes = {c: lab.probe_process(c, "acl") for c in components}
    try:
        for process in probes.values():
            assert process.stdout is not None
            assert json.loads(process.stdout.readline()) == {"ready": True}
        for process in probes.values():
            assert _send(process, {"publish": topics}) == {"published": True}
        expected = {
            reader: sorted(
                f"{_identity(writer)[1]}|{topic}"
                for writer in components
                for topic in topics
                if _may(writer, "write", topic) and _may(reader, "read", topic)
            )
            for reader in components
        }
        # Deliveries are asynchronous: ask until every reader has all it should get.
        for reader, process in probes.items():

            def complete(process: subprocess.Popen[str] = process, reader: str = reader) -> bool:
                report = _send(process, {"report": True})["received"]
                return _ours(report, topics) == expected[reader]

            eventually(complete, interval_s=0.1)
            received = _ours(_send(process, {"report": True})["received"], topics)
            assert received == expected[reader], reader
        time.sleep(0.5)  # and nothing more turns up late
        for reader, process in probes.items():
            received = _ours(_send(process, {"report": True})["received"], topics)
            assert received == expected[reader], reader
        assert all(expected[r] for r in components)  # the matrix is not trivially empty
    finally:
        for process in probes.values():
            if process.poll() is None:
                assert process.stdin is not None
                process.stdin.write('"quit"\n')
                process.stdin.close()
                process.wait(timeout=20)


def test_blobs_travel_through_the_tunnel_to_their_readers_only(lab: Lab) -> None:
    put = lab.probe("researcher", "blob-put", "node1")
    blob_id = str(put["blob_id"])
    got = lab.probe("node1", "blob-get", blob_id)
    assert got.get("sha256") == blob_id
    refused = lab.probe("node2", "blob-get", blob_id)
    assert refused.get("kind") == "NotFound"


def test_every_peer_logs_in_to_the_broker_with_its_folder(lab: Lab) -> None:
    for component in ["researcher", *NODES]:
        assert lab.probe(component, "mqtt-login") == {"ok": True}, component
