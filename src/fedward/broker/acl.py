"""The broker ACL: rendered from ``fedward.protocol.topics.acl_rules``, never written by hand.

Mosquitto's ``acl_file`` format, restricted to what we render::

    user node1
    topic read fedward/v1/nodes/+

The embedded broker parses the same file into an :class:`AclPolicy`, so both brokers
enforce one policy, the way Mosquitto 2.0 does: any SUBSCRIBE is granted, and each
message is checked against the reader's rules when it is delivered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fedward.broker.peers import BrokerPeer
from fedward.errors import ConfigError
from fedward.protocol.topics import Access, AclRule, acl_rules, topic_matches

_ACCESS: tuple[Access, ...] = ("read", "write", "readwrite")
HEADER = "# fedward broker ACL, rendered from fedward.protocol.topics.acl_rules: do not edit\n"


def render_acl(peers: Sequence[BrokerPeer]) -> str:
    """One ``user`` block per peer, sorted by username; rules in ``acl_rules`` order."""
    blocks = []
    for peer in sorted(peers, key=lambda p: p.username):
        lines = [f"user {peer.username}"]
        lines += [
            f"topic {rule.access} {rule.topic}" for rule in acl_rules(peer.role, peer.peer_id)
        ]
        blocks.append("\n".join(lines) + "\n")
    return HEADER + "\n" + "\n".join(blocks)


def parse_acl(text: str) -> AclPolicy:
    """Read an ACL file of the rendered form; ConfigError on anything else."""
    rules: dict[str, list[AclRule]] = {}
    current: list[AclRule] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if words[0] == "user" and len(words) == 2:
            current = rules.setdefault(words[1], [])
        elif (
            words[0] == "topic" and len(words) == 3 and words[1] in _ACCESS and current is not None
        ):
            current.append(AclRule(words[1], words[2]))
        else:
            raise ConfigError(
                f"ACL line {number} is not 'user NAME' or, after it, 'topic ACCESS TOPIC': {raw!r}",
                hint="re-render it with 'fedward broker config'",
            )
    return AclPolicy(rules)


@dataclass(frozen=True)
class AclPolicy:
    """Per-username rules. Users without rules may do nothing."""

    rules: Mapping[str, Sequence[AclRule]] = field(default_factory=dict)

    def may_write(self, username: str, topic: str) -> bool:
        return any(
            rule.access in ("write", "readwrite") and topic_matches(rule.topic, topic)
            for rule in self.rules.get(username, ())
        )

    def may_read(self, username: str, topic: str) -> bool:
        return any(
            rule.access in ("read", "readwrite") and topic_matches(rule.topic, topic)
            for rule in self.rules.get(username, ())
        )
