"""The embedded broker's resource limits: what one peer, or a stranger, can make it hold.

Every value here bounds memory or CPU that a client could otherwise claim without end
(found by an attacker review: node accounts and unauthenticated strangers). They follow
from fedward's protocol and are not meant to be tuned.

What a client gets when it meets a limit, so that fedward's clients fail plainly
instead of retrying for ever:

- a topic filter too many or too long: SUBACK failure (0x80) for that filter, as MQTT
  3.1.1 provides; the connection and its other filters stay (``MqttChannel.subscribe``
  raises ``AccessDenied``).
- a retained message where fedward retains none, or too large: delivered as an ordinary
  message, not kept (the ACL allows the publish itself, so it is not dropped).
"""

from __future__ import annotations

from fedward.protocol.topics import PRESENCE_FILTER

MAX_SUBSCRIPTIONS_PER_SESSION = 32
"""Topic filters one connection may hold. A node subscribes to 4 (requests, broadcasts,
secure-aggregation adverts, its own presence), a researcher to 2, ``fedward doctor`` to 2;
each publish is matched against every filter of every session, so this also bounds the
cost of routing one message."""

MAX_TOPIC_FILTER_BYTES = 256
"""fedward's longest filter is ``fedward/v1/node/{64-character id}/+``, 83 bytes."""

RETAINED_TOPIC_FILTERS = (PRESENCE_FILTER,)
"""Topics where the broker keeps a retained message: fedward retains only node presence
(the node's "online", and "offline" as its will). With the ACL, a node account can write
only its own presence topic, so each account keeps at most one retained message."""

MAX_RETAINED_BYTES = 4096
"""A presence message is a few hundred bytes; the researcher refuses to decode one over
4096 (``protocol.codec.decode_presence``), so keeping a larger one serves nobody."""
