from __future__ import annotations

import pytest

from fedward.errors import ProtocolError, ValidationError
from fedward.protocol.topics import (
    PRESENCE_FILTER,
    AclRule,
    PeerRole,
    acl_rules,
    broadcast_topic,
    node_of_presence,
    node_subscriptions,
    node_topic,
    presence_topic,
    reply_topic,
    researcher_subscriptions,
    sender_of_reply,
    sender_of_request,
    topic_matches,
)

NODES = ["node1", "node2"]
RESEARCHERS = ["alice", "bob"]


# --- builders and parsers ---------------------------------------------------------------


def test_topics_have_the_documented_shape() -> None:
    assert broadcast_topic("alice") == "fedward/v1/nodes/alice"
    assert node_topic("node1", "alice") == "fedward/v1/node/node1/alice"
    assert reply_topic("alice", "node1") == "fedward/v1/researcher/alice/node1"
    assert presence_topic("node1") == "fedward/v1/presence/node1"


@pytest.mark.parametrize("researcher_id", RESEARCHERS)
@pytest.mark.parametrize("node_id", NODES)
def test_request_topics_name_their_sender(node_id: str, researcher_id: str) -> None:
    assert sender_of_request(broadcast_topic(researcher_id), node_id) == researcher_id
    assert sender_of_request(node_topic(node_id, researcher_id), node_id) == researcher_id


@pytest.mark.parametrize("researcher_id", RESEARCHERS)
@pytest.mark.parametrize("node_id", NODES)
def test_reply_and_presence_topics_name_their_sender(node_id: str, researcher_id: str) -> None:
    assert sender_of_reply(reply_topic(researcher_id, node_id), researcher_id) == node_id
    assert node_of_presence(presence_topic(node_id)) == node_id


@pytest.mark.parametrize("build", [broadcast_topic, presence_topic])
@pytest.mark.parametrize("bad_id", ["a/b", "+", "#", "", "../x", "x" * 65])
def test_builders_refuse_ids_that_would_change_the_topic_shape(build, bad_id: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationError):
        build(bad_id)


@pytest.mark.parametrize("bad_id", ["a/b", "+", "#"])
def test_two_level_builders_refuse_bad_ids_in_either_place(bad_id: str) -> None:
    for call in (
        lambda: node_topic(bad_id, "alice"),
        lambda: node_topic("node1", bad_id),
        lambda: reply_topic(bad_id, "node1"),
        lambda: reply_topic("alice", bad_id),
        lambda: node_subscriptions(bad_id),
        lambda: researcher_subscriptions(bad_id),
    ):
        with pytest.raises(ValidationError):
            call()


@pytest.mark.parametrize(
    "topic",
    [
        "fedward/v1/node/node2/alice",  # addressed to another node
        "fedward/v1/researcher/alice/node1",  # a reply topic, not a request
        "fedward/v1/nodes",  # no sender level
        "fedward/v1/nodes/alice/extra",  # one level too many
        "fedward/v1/node/node1",  # no sender level
        "fedward/v1/node/node1/alice/extra",
        "fedward/v2/nodes/alice",  # another protocol version
        "other/v1/nodes/alice",
        "/fedward/v1/nodes/alice",
        "fedward/v1/presence/node1",
    ],
)
def test_a_node_refuses_topics_that_are_not_its_request_topics(topic: str) -> None:
    with pytest.raises(ProtocolError, match="not a request topic of node 'node1'"):
        sender_of_request(topic, "node1")


@pytest.mark.parametrize(
    "topic",
    [
        "fedward/v1/researcher/bob/node1",  # a reply meant for another researcher
        "fedward/v1/researcher/alice",  # no sender level
        "fedward/v1/researcher/alice/node1/extra",
        "fedward/v1/node/node1/alice",
        "fedward/v1/nodes/node1",
        "fedward/v0/researcher/alice/node1",
    ],
)
def test_a_researcher_refuses_topics_that_are_not_its_reply_topics(topic: str) -> None:
    with pytest.raises(ProtocolError, match="not a reply topic of researcher 'alice'"):
        sender_of_reply(topic, "alice")


@pytest.mark.parametrize(
    "topic", ["fedward/v1/presence", "fedward/v1/presence/n/x", "fedward/v1/node/n1/alice"]
)
def test_presence_parser_refuses_other_topics(topic: str) -> None:
    with pytest.raises(ProtocolError, match="not a presence topic"):
        node_of_presence(topic)


@pytest.mark.parametrize(
    ("parse", "topic"),
    [
        (lambda t: sender_of_request(t, "node1"), "fedward/v1/nodes/ali ce"),
        (lambda t: sender_of_request(t, "node1"), "fedward/v1/node/node1/" + "x" * 65),
        (lambda t: sender_of_reply(t, "alice"), "fedward/v1/researcher/alice/no.de"),
        (lambda t: node_of_presence(t), "fedward/v1/presence/+"),
    ],
    ids=["broadcast-space", "node-too-long", "reply-dot", "presence-wildcard"],
)
def test_a_sender_level_that_is_not_a_valid_id_is_a_protocol_error(parse, topic: str) -> None:  # type: ignore[no-untyped-def]
    # The parsers promise "ProtocolError otherwise": callers that only catch ProtocolError
    # must not crash on a topic whose sender level breaks the id rules.
    with pytest.raises(ProtocolError):
        parse(topic)


# --- topic_matches ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b/c", "a/b/c", True),
        ("a/b/c", "a/b/d", False),
        ("a/+/c", "a/x/c", True),
        ("a/+/c", "a/x/y/c", False),
        ("a/+", "a", False),
        ("a/+", "a/", True),  # MQTT: an empty level is still a level
        ("a/#", "a/b/c/d", True),
        ("a/#", "a", True),  # MQTT 3.1.1 4.7.1.2: "x/#" also matches the parent "x"
        ("a/#", "b", False),
        ("#", "anything/at/all", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
        ("+/+", "x/y", True),
    ],
)
def test_topic_filters_follow_mqtt_wildcard_rules(
    topic_filter: str, topic: str, expected: bool
) -> None:
    assert topic_matches(topic_filter, topic) is expected


# --- ACL: the broker policy, checked as a matrix -------------------------------------------


def allowed(rules: list[AclRule], access: str, topic: str) -> bool:
    return any(
        topic_matches(rule.topic, topic) and rule.access in (access, "readwrite") for rule in rules
    )


def every_topic() -> list[str]:
    topics = [presence_topic(n) for n in NODES]
    for r in RESEARCHERS:
        topics.append(broadcast_topic(r))
        for n in NODES:
            topics += [node_topic(n, r), reply_topic(r, n)]
    return topics


def node_may_read(node_id: str, topic: str) -> bool:
    return topic in {broadcast_topic(r) for r in RESEARCHERS} | {
        node_topic(node_id, r) for r in RESEARCHERS
    } | {presence_topic(node_id)}


def node_may_write(node_id: str, topic: str) -> bool:
    return topic in {reply_topic(r, node_id) for r in RESEARCHERS} | {presence_topic(node_id)}


def researcher_may_read(researcher_id: str, topic: str) -> bool:
    return topic in {reply_topic(researcher_id, n) for n in NODES} | {
        presence_topic(n) for n in NODES
    }


def researcher_may_write(researcher_id: str, topic: str) -> bool:
    return topic in {broadcast_topic(researcher_id)} | {node_topic(n, researcher_id) for n in NODES}


@pytest.mark.parametrize("node_id", NODES)
@pytest.mark.parametrize("topic", every_topic())
def test_node_acl_matrix(node_id: str, topic: str) -> None:
    rules = acl_rules("node", node_id)
    assert allowed(rules, "read", topic) is node_may_read(node_id, topic)
    assert allowed(rules, "write", topic) is node_may_write(node_id, topic)


@pytest.mark.parametrize("researcher_id", RESEARCHERS)
@pytest.mark.parametrize("topic", every_topic())
def test_researcher_acl_matrix(researcher_id: str, topic: str) -> None:
    rules = acl_rules("researcher", researcher_id)
    assert allowed(rules, "read", topic) is researcher_may_read(researcher_id, topic)
    assert allowed(rules, "write", topic) is researcher_may_write(researcher_id, topic)


def test_no_rule_grants_a_whole_subtree() -> None:
    roles: tuple[PeerRole, ...] = ("node", "researcher")
    for role in roles:
        for rule in acl_rules(role, "peer1"):
            assert "#" not in rule.topic


def test_each_subscription_is_granted_by_a_read_rule() -> None:
    node_reads = {r.topic for r in acl_rules("node", "node1") if r.access in ("read", "readwrite")}
    assert set(node_subscriptions("node1")) <= node_reads
    researcher_reads = {r.topic for r in acl_rules("researcher", "alice") if r.access == "read"}
    assert set(researcher_subscriptions("alice")) | {PRESENCE_FILTER} <= researcher_reads


def test_what_one_side_sends_the_other_side_subscribes_to() -> None:
    node_filters = node_subscriptions("node1")
    assert any(topic_matches(f, broadcast_topic("alice")) for f in node_filters)
    assert any(topic_matches(f, node_topic("node1", "alice")) for f in node_filters)
    assert not any(topic_matches(f, node_topic("node2", "alice")) for f in node_filters)
    researcher_filters = researcher_subscriptions("alice")
    assert any(topic_matches(f, reply_topic("alice", "node1")) for f in researcher_filters)
    assert not any(topic_matches(f, reply_topic("bob", "node1")) for f in researcher_filters)
    assert topic_matches(PRESENCE_FILTER, presence_topic("node1"))


def test_acl_refuses_unknown_roles_and_bad_peer_ids() -> None:
    with pytest.raises(ProtocolError, match="unknown peer role 'admin'"):
        acl_rules("admin", "x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="node id"):
        acl_rules("node", "node1/#")
