"""The ACL file: rendered only from ``acl_rules``, and read back into the same policy."""

from __future__ import annotations

import pytest

from fedward.broker.acl import parse_acl, render_acl
from fedward.broker.peers import BrokerPeer
from fedward.config.model import Secret
from fedward.errors import ConfigError
from fedward.protocol import topics
from fedward.protocol.topics import acl_rules

PEERS = [
    BrokerPeer("node", "node1", Secret("x")),
    BrokerPeer("node", "node2", Secret("x")),
    BrokerPeer("researcher", "res1", Secret("x")),
]


def test_parsed_acl_holds_exactly_the_rules_of_each_peer() -> None:
    policy = parse_acl(render_acl(PEERS))
    assert set(policy.rules) == {"node1", "node2", "res1"}
    for peer in PEERS:
        assert list(policy.rules[peer.username]) == acl_rules(peer.role, peer.peer_id)


def test_policy_lets_a_node_read_its_topics_and_write_only_its_replies() -> None:
    policy = parse_acl(render_acl(PEERS))
    assert policy.may_read("node1", topics.node_topic("node1", "res1"))
    assert policy.may_read("node1", topics.broadcast_topic("res1"))
    assert not policy.may_read("node1", topics.node_topic("node2", "res1"))
    assert policy.may_write("node1", topics.reply_topic("res1", "node1"))
    assert not policy.may_write("node1", topics.reply_topic("res1", "node2"))
    assert not policy.may_write("node1", topics.node_topic("node1", "res1"))


def test_policy_lets_a_researcher_write_requests_only_in_its_own_name() -> None:
    policy = parse_acl(render_acl(PEERS))
    assert policy.may_write("res1", topics.node_topic("node2", "res1"))
    assert not policy.may_write("res1", topics.node_topic("node2", "res2"))
    assert not policy.may_write("res1", topics.broadcast_topic("res2"))
    assert policy.may_read("res1", topics.presence_topic("node2"))
    assert not policy.may_read("res1", topics.reply_topic("res2", "node1"))


def test_unknown_user_may_do_nothing() -> None:
    policy = parse_acl(render_acl(PEERS))
    assert not policy.may_read("stranger", topics.presence_topic("node1"))
    assert not policy.may_write("stranger", topics.presence_topic("node1"))


@pytest.mark.parametrize(
    "text",
    [
        "topic read #\n",  # a rule for everyone, before any user
        "user a\npattern read %u/#\n",
        "user a\ntopic deny x\n",
        "user a b\n",
    ],
)
def test_hand_written_acl_lines_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="fedward broker config"):
        parse_acl(text)
