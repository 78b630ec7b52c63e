"""The broker rows: seen from a peer (login, own topics, the ACL) and on the broker's host.

MQTT 3.1.1 cannot say "denied" to a subscriber, and Mosquitto 2.0 grants every
subscription and filters each message by the ACL instead. So the ACL is checked by its
effect: the peer subscribes to a topic it may read and publishes there *as a writer it is
not* (a node writing a researcher's broadcast, a researcher writing a node's reply). Under
fedward's ACL the broker drops that message; if it comes back, the broker lets any peer
pose as another. The probe message is empty, so even then no one acts on it.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fedward.broker.render import BrokerFiles, read_broker_settings
from fedward.config.model import BrokerEndpoint
from fedward.doctor.outcome import Check, Outcome, failed, passed
from fedward.errors import AccessDenied, TransportError
from fedward.protocol.topics import (
    PeerRole,
    broadcast_topic,
    node_subscriptions,
    reply_topic,
    researcher_subscriptions,
)

if TYPE_CHECKING:
    from fedward.transport.mqtt import MqttChannel  # paho is imported only when used

LOGIN = "broker login"
CONNECT_TIMEOUT_S = 10.0
ECHO_WAIT_S = 1.5  # after the broker acknowledged the probe: it routes before it acks


def peer_broker_checks(
    role: PeerRole, peer_id: str, broker: BrokerEndpoint, *, needs: Sequence[str] = ()
) -> list[Check]:
    return [
        Check(LOGIN, lambda: _login(peer_id, broker), needs=tuple(needs)),
        Check("broker topics", lambda: _topics(role, peer_id, broker), needs=(LOGIN,)),
    ]


def _channel(peer_id: str, broker: BrokerEndpoint) -> MqttChannel:
    from fedward.transport.mqtt import MqttChannel

    client_id = f"{peer_id}-doctor-{secrets.token_hex(3)}"
    return MqttChannel(broker, client_id, connect_timeout_s=CONNECT_TIMEOUT_S)


def _login(peer_id: str, broker: BrokerEndpoint) -> Outcome:
    where = f"{broker.host}:{broker.port}"
    if broker.password is None:
        return failed(
            f"no broker password for {broker.username or peer_id}",
            "load the enrolment folder's settings: set -a; . FOLDER/fedward.env; set +a",
        )
    try:
        _channel(peer_id, broker).close()
    except AccessDenied:
        return failed(
            f"the broker at {where} refuses user {broker.username!r}",
            "revoked, or the broker host has an old mqtt/broker: on the VPN server check "
            "'fedward vpn list', copy mqtt/broker/ to the broker host and run "
            "'fedward broker reload --config-dir mqtt/broker' there",
        )
    except TransportError as exc:
        return failed(
            f"no broker answers at {where}: {exc.message}",
            "on the broker host: fedward doctor broker --config-dir mqtt/broker",
        )
    return passed(f"{broker.username} logged in at {where}")


def _topics(role: PeerRole, peer_id: str, broker: BrokerEndpoint) -> Outcome:
    if role == "node":
        own = node_subscriptions(peer_id)
        # Only researchers may write a broadcast; a node's copy must be dropped.
        forbidden = broadcast_topic(f"doctor-{secrets.token_hex(4)}")
        writer = "researchers"
    else:
        own = researcher_subscriptions(peer_id)
        # Only the node named in a reply topic may write it.
        forbidden = reply_topic(peer_id, f"doctor-{secrets.token_hex(4)}")
        writer = "nodes"
    echoed = threading.Event()

    def on_message(topic: str, payload: bytes) -> None:
        if topic == forbidden:
            echoed.set()

    channel = _channel(peer_id, broker)
    try:
        for topic_filter in own:
            channel.subscribe(topic_filter, on_message)
        channel.publish(forbidden, b"")
        channel.flush(CONNECT_TIMEOUT_S)
        came_back = echoed.wait(ECHO_WAIT_S)
    finally:
        channel.close()
    if came_back:
        return failed(
            f"the broker let {peer_id} write {forbidden}, which only {writer} may write: "
            "it does not enforce fedward's ACL",
            "run the broker from the configuration the VPN server renders "
            "(fedward broker run --config-dir mqtt/broker), not a hand-written one",
        )
    return passed(f"subscribed to {', '.join(own)}; a foreign topic is refused")


# -- the broker's host -------------------------------------------------------------------


def broker_host_checks(config_dir: Path, *, needs: Sequence[str] = ()) -> list[Check]:
    files = BrokerFiles.in_dir(config_dir)
    return [
        Check("broker configuration", lambda: _configuration(files)),
        Check(
            "broker listening",
            lambda: _listening(files),
            needs=("broker configuration", *needs),
        ),
    ]


def _configuration(files: BrokerFiles) -> Outcome:
    settings = read_broker_settings(files.conf)
    for path in (settings.password_file, settings.acl_file):
        if not path.is_file():
            return failed(f"{path} is missing", "copy mqtt/broker/ from the VPN server again")
    users = sum(1 for line in settings.password_file.read_text().splitlines() if ":" in line)
    account = settings.user or "the user who starts it"
    return passed(f"{settings.host}:{settings.port}, {users} accounts; Mosquitto runs as {account}")


def _listening(files: BrokerFiles) -> Outcome:
    from fedward.transport.mqtt import MqttChannel

    settings = read_broker_settings(files.conf)
    where = f"{settings.host}:{settings.port}"
    anonymous = BrokerEndpoint(settings.host, settings.port)
    try:
        MqttChannel(
            anonymous, f"doctor-{secrets.token_hex(3)}", connect_timeout_s=CONNECT_TIMEOUT_S
        ).close()
    except AccessDenied:
        return passed(f"{where} answers and refuses anonymous clients")
    except TransportError as exc:
        return failed(
            f"nothing answers at {where}: {exc.message}",
            f"sudo fedward broker run --config-dir {files.conf.parent}",
        )
    return failed(
        f"{where} lets anonymous clients in",
        f"run the rendered configuration: fedward broker run --config-dir {files.conf.parent}",
    )
