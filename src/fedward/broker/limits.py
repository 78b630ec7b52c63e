"""The embedded broker's resource limits: what one peer, or a stranger, can make it hold.

Every value here bounds memory or CPU that a client could otherwise claim without end
(found by an attacker review: node accounts and unauthenticated strangers). Only the
total connection count is an operator's setting (``max_connections`` in
``mosquitto.conf``, Mosquitto's own key, rendered by ``fedward broker config
--max-connections``); the others follow from fedward's protocol and are not meant to be
tuned.

What a client gets when it meets a limit, so that fedward's clients fail plainly
instead of retrying for ever:

- before its CONNECT is accepted (too many connections, in all or still in their
  handshake from its address; a CONNECT too large; none within the deadline): the
  connection is closed at once, with no CONNACK (paho tries again after a second);
- too many password checks waiting already, or too many connections of its account:
  CONNACK "server unavailable" (3), then the connection is closed (paho tries again
  later; a first connection raises);
- a topic filter too many or too long: SUBACK failure (0x80) for that filter, as MQTT
  3.1.1 provides; the connection and its other filters stay (``MqttChannel.subscribe``
  raises ``AccessDenied``).
- a retained message where fedward retains none, or too large: delivered as an ordinary
  message, not kept (the ACL allows the publish itself, so it is not dropped).
"""

from __future__ import annotations

from fedward.protocol.topics import PRESENCE_FILTER

CONNECT_TIMEOUT_S = 10.0
"""A new connection must have sent its whole CONNECT by then: clients send it as soon as
TCP connects, and a stranger dripping bytes holds a handshake slot no longer."""

MAX_CONNECT_BYTES = 4096
"""The first packet (CONNECT) is read before anyone is authenticated. Ours carry a client id
and a username of at most 64 characters, a generated password and a presence will of a
few hundred bytes: 4 KiB is ten times that, and bounds what a stranger makes us buffer."""

MAX_HANDSHAKES = 256
"""Connections accepted but not yet answered with a CONNACK, in all: with
``MAX_CONNECT_BYTES`` each, 1 MiB at most before any password is checked."""

MAX_HANDSHAKES_PER_ADDRESS = 64
"""The same, from one IP address, so that one stranger cannot take every slot. In the demo
and in tests every peer comes from 127.0.0.1: 64 lets 50 nodes connect at the same moment;
on the VPN each peer has its own address."""

PASSWORD_CHECKS_AT_ONCE = 2
"""PBKDF2 (``passwords.DEFAULT_ITERATIONS``, about 10 ms) runs in this many threads; more
would only take CPU from routing messages."""

MAX_WAITING_PASSWORD_CHECKS = 128
"""Password checks waiting for a thread. Past this a CONNECT is told "server unavailable"
instead of taking a place: the queue, and the time a check waits in it (at most about
128 x 10 ms / 2 = 0.6 s), are bounded. Checks take their turn by address in round robin,
so a flood from a few addresses delays an honest peer by a few checks, not by the
queue; twice ``MAX_HANDSHAKES_PER_ADDRESS``, so one address cannot fill it alone."""

MAX_CONNECTIONS_PER_USERNAME = 8
"""Live connections of one account (a client id reconnecting replaces its old connection
and does not count twice). A node holds one, and one more while ``fedward doctor`` runs;
a researcher one per open experiment. Each connection may have up to
``render.MAX_QUEUED_BYTES`` (64 MiB) waiting for a slow reader, so one account holds at
most 8 x 64 MiB, not any multiple it likes."""

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
