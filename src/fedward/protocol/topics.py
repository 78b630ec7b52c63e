"""MQTT topics: the only place they are built and parsed.

The sender of a message is always one topic level, and the broker's ACL (rendered from
``acl_rules``) lets a peer write only topics that carry its own id there. So a receiver
learns who sent a message from the topic, never from the message body.

    fedward/v1/nodes/{researcher_id}                 researcher -> every node
    fedward/v1/node/{node_id}/{researcher_id}        researcher -> one node
    fedward/v1/researcher/{researcher_id}/{node_id}  node -> researcher
    fedward/v1/presence/{node_id}                    node presence (retained; will = offline)
    fedward/v1/secagg/{researcher_id}/{node_id}      node -> every node: its secure-aggregation
                                                     keys for a round of that researcher
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fedward.core.ids import validate_id
from fedward.errors import ProtocolError

PREFIX = "fedward/v1"
Access = Literal["read", "write", "readwrite"]
PeerRole = Literal["node", "researcher"]


def broadcast_topic(researcher_id: str) -> str:
    return f"{PREFIX}/nodes/{validate_id(researcher_id, kind='researcher id')}"


def node_topic(node_id: str, researcher_id: str) -> str:
    node_id = validate_id(node_id, kind="node id")
    return f"{PREFIX}/node/{node_id}/{validate_id(researcher_id, kind='researcher id')}"


def reply_topic(researcher_id: str, node_id: str) -> str:
    researcher_id = validate_id(researcher_id, kind="researcher id")
    return f"{PREFIX}/researcher/{researcher_id}/{validate_id(node_id, kind='node id')}"


def presence_topic(node_id: str) -> str:
    return f"{PREFIX}/presence/{validate_id(node_id, kind='node id')}"


def node_subscriptions(node_id: str) -> list[str]:
    validate_id(node_id, kind="node id")
    return [f"{PREFIX}/nodes/+", f"{PREFIX}/node/{node_id}/+"]


def researcher_subscriptions(researcher_id: str) -> list[str]:
    return [f"{PREFIX}/researcher/{validate_id(researcher_id, kind='researcher id')}/+"]


PRESENCE_FILTER = f"{PREFIX}/presence/+"
#: Every node reads every node's secure-aggregation adverts (public keys only).
ADVERT_FILTER = f"{PREFIX}/secagg/+/+"


def advert_topic(researcher_id: str, node_id: str) -> str:
    researcher_id = validate_id(researcher_id, kind="researcher id")
    return f"{PREFIX}/secagg/{researcher_id}/{validate_id(node_id, kind='node id')}"


def sender_of_advert(topic: str) -> tuple[str, str]:
    """(researcher id, node id) of a secure-aggregation advert; the node is its sender."""
    levels = _levels(topic)
    prefix = _levels(PREFIX)
    rest = levels[len(prefix) :]
    if levels[: len(prefix)] == prefix and len(rest) == 3 and rest[0] == "secagg":
        return _sender(rest[1], "researcher id"), _sender(rest[2], "node id")
    raise ProtocolError(f"topic {topic!r} is not a secure-aggregation advert topic")


def _levels(topic: str) -> list[str]:
    return topic.split("/")


def _sender(level: str, kind: str) -> str:
    try:
        return validate_id(level, kind=kind)
    except ValueError as exc:
        raise ProtocolError(f"topic names an invalid {kind}: {level!r}") from exc


def sender_of_request(topic: str, node_id: str) -> str:
    """The researcher id of a request received by ``node_id``; ProtocolError otherwise."""
    levels = _levels(topic)
    prefix = _levels(PREFIX)
    rest = levels[len(prefix) :]
    if levels[: len(prefix)] == prefix:
        if len(rest) == 2 and rest[0] == "nodes":
            return _sender(rest[1], "researcher id")
        if len(rest) == 3 and rest[0] == "node" and rest[1] == node_id:
            return _sender(rest[2], "researcher id")
    raise ProtocolError(f"topic {topic!r} is not a request topic of node {node_id!r}")


def sender_of_reply(topic: str, researcher_id: str) -> str:
    """The node id of a reply received by ``researcher_id``; ProtocolError otherwise."""
    levels = _levels(topic)
    prefix = _levels(PREFIX)
    rest = levels[len(prefix) :]
    is_reply = len(rest) == 3 and rest[0] == "researcher" and rest[1] == researcher_id
    if levels[: len(prefix)] == prefix and is_reply:
        return _sender(rest[2], "node id")
    raise ProtocolError(f"topic {topic!r} is not a reply topic of researcher {researcher_id!r}")


def node_of_presence(topic: str) -> str:
    levels = _levels(topic)
    prefix = _levels(PREFIX)
    rest = levels[len(prefix) :]
    if levels[: len(prefix)] == prefix and len(rest) == 2 and rest[0] == "presence":
        return _sender(rest[1], "node id")
    raise ProtocolError(f"topic {topic!r} is not a presence topic")


@dataclass(frozen=True)
class AclRule:
    access: Access
    topic: str


def acl_rules(role: PeerRole, peer_id: str) -> list[AclRule]:
    """What a peer may read and write: the whole broker policy, in one place."""
    peer_id = validate_id(peer_id, kind=f"{role} id")
    if role == "node":
        return [
            AclRule("read", f"{PREFIX}/nodes/+"),
            AclRule("read", f"{PREFIX}/node/{peer_id}/+"),
            AclRule("write", f"{PREFIX}/researcher/+/{peer_id}"),
            AclRule("readwrite", f"{PREFIX}/presence/{peer_id}"),
            AclRule("write", f"{PREFIX}/secagg/+/{peer_id}"),
            AclRule("read", ADVERT_FILTER),
        ]
    if role == "researcher":
        return [
            AclRule("write", f"{PREFIX}/nodes/{peer_id}"),
            AclRule("write", f"{PREFIX}/node/+/{peer_id}"),
            AclRule("read", f"{PREFIX}/researcher/{peer_id}/+"),
            AclRule("read", PRESENCE_FILTER),
        ]
    raise ProtocolError(f"unknown peer role {role!r}")


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching with ``+`` (one level) and ``#`` (the rest)."""
    filter_levels = _levels(topic_filter)
    topic_levels = _levels(topic)
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)
