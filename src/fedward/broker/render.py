"""The broker's configuration directory: ``mosquitto.conf``, ``passwords``, ``acl``.

``render_broker_config`` writes all three atomically, in a deterministic order so that
re-rendering an unchanged peer set changes no byte: a user's password hash is kept when
the password and iteration count still match it (a fresh salt would change the file on
every render).
``read_broker_settings`` reads back what the embedded broker needs from the same files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fedward.broker.acl import render_acl
from fedward.broker.passwords import (
    DEFAULT_ITERATIONS,
    SaltSource,
    hash_iterations,
    hash_password,
    parse_password_file,
    render_password_file,
    verify_password,
)
from fedward.broker.peers import BrokerPeer, check_unique
from fedward.config.model import DEFAULT_MAX_MESSAGE_BYTES
from fedward.errors import ConfigError
from fedward.storage.atomic import atomic_write_text

CONF_NAME = "mosquitto.conf"
PASSWORDS_NAME = "passwords"
ACL_NAME = "acl"
PACKET_OVERHEAD_BYTES = 4096
"""Room for the fixed header and topic on top of the payload limit; our topics are short."""
MAX_QUEUED_MESSAGES = 1000
MAX_QUEUED_BYTES = 64 << 20
DEFAULT_MAX_CONNECTIONS = 1024
"""Connections a broker serves at once (Mosquitto's ``max_connections``, which the embedded
broker reads too): a federation of hundreds of nodes with room for reconnections, under
the 1024 open files a process gets by default; more with ``--max-connections``."""


@dataclass(frozen=True)
class BrokerFiles:
    conf: Path
    passwords: Path
    acl: Path

    @classmethod
    def in_dir(cls, config_dir: Path) -> BrokerFiles:
        config_dir = Path(config_dir).absolute()
        return cls(config_dir / CONF_NAME, config_dir / PASSWORDS_NAME, config_dir / ACL_NAME)


@dataclass(frozen=True)
class BrokerSettings:
    """What ``mosquitto.conf`` says, as far as the embedded broker needs it."""

    host: str
    port: int
    password_file: Path
    acl_file: Path
    message_size_limit: int
    max_packet_size: int
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    user: str | None = None  # whom Mosquitto switches to when started as root


def render_broker_config(
    peers: Sequence[BrokerPeer],
    out_dir: Path,
    host: str,
    port: int,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    *,
    run_as: str | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    salt_source: SaltSource | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> BrokerFiles:
    """Write the broker's three files into ``out_dir`` and return their paths.

    ``run_as`` is the user Mosquitto switches to when started as root (its ``user``
    option); by default its own account when root renders, else the user rendering the
    files, who owns them (see ``fedward.broker.run_as``).
    """
    from fedward.broker.run_as import default_broker_user

    check_unique(peers)
    if not 0 < port < 65536:
        raise ConfigError(f"broker port must be 1-65535, got {port}")
    if max_message_bytes < 1:
        raise ConfigError(f"max message size must be positive, got {max_message_bytes}")
    _check_max_connections(max_connections)
    files = BrokerFiles.in_dir(out_dir)
    hashes = _password_hashes(peers, files.passwords, iterations, salt_source)
    atomic_write_text(files.passwords, render_password_file(hashes), mode=0o600)
    atomic_write_text(files.acl, render_acl(peers), mode=0o600)
    conf = render_mosquitto_conf(
        files, host, port, max_message_bytes, run_as or default_broker_user(), max_connections
    )
    atomic_write_text(files.conf, conf, mode=0o644)
    return files


def render_mosquitto_conf(
    files: BrokerFiles,
    host: str,
    port: int,
    max_message_bytes: int,
    run_as: str,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> str:
    if not host or any(c.isspace() for c in host) or any(c.isspace() for c in run_as):
        raise ConfigError(f"invalid broker listen host {host!r} or user {run_as!r}")
    lines = [
        "# fedward broker configuration, rendered by 'fedward broker config': do not edit",
        f"user {run_as}",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {files.passwords}",
        f"acl_file {files.acl}",
        f"listener {port} {host}",
        f"max_connections {max_connections}",  # a listener's option: after its line
        "set_tcp_nodelay true",
        f"message_size_limit {max_message_bytes}",
        f"max_packet_size {max_message_bytes + PACKET_OVERHEAD_BYTES}",
        f"max_queued_messages {MAX_QUEUED_MESSAGES}",
        f"max_queued_bytes {MAX_QUEUED_BYTES}",
        # Sessions (subscriptions, messages queued for a peer that is away) survive a
        # broker restart, even a crash: saved every second, and for an hour at most.
        "persistence true",
        f"persistence_location {files.conf.parent}/",
        "autosave_interval 1",
        "persistent_client_expiration 1h",
        "sys_interval 0",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
    ]
    return "\n".join(lines) + "\n"


def read_broker_settings(conf: Path) -> BrokerSettings:
    """Read back a rendered ``mosquitto.conf``; ConfigError if a needed key is missing."""
    try:
        text = Path(conf).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read broker configuration {conf}: {exc.strerror}") from exc
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split()
        if words and not words[0].startswith("#"):
            values[words[0]] = words[1:]
    try:
        port, host = values["listener"]
        return BrokerSettings(
            host=host,
            port=int(port),
            password_file=Path(" ".join(values["password_file"])),
            acl_file=Path(" ".join(values["acl_file"])),
            message_size_limit=int(values["message_size_limit"][0]),
            max_packet_size=int(values["max_packet_size"][0]),
            # Absent from directories rendered before it existed.
            max_connections=_check_max_connections(
                int(values.get("max_connections", [DEFAULT_MAX_CONNECTIONS])[0])
            ),
            user=values["user"][0] if values.get("user") else None,
        )
    except (KeyError, ValueError, IndexError) as exc:
        raise ConfigError(
            f"broker configuration {conf} lacks 'listener PORT HOST', password_file, acl_file, "
            "message_size_limit or max_packet_size, or one is not a number (max_connections "
            "too)",
            hint="render it with 'fedward broker config'",
        ) from exc


def _check_max_connections(max_connections: int) -> int:
    if max_connections < 1:
        raise ConfigError(f"broker max_connections must be positive, got {max_connections}")
    return max_connections


def _password_hashes(
    peers: Sequence[BrokerPeer],
    existing_file: Path,
    iterations: int,
    salt_source: SaltSource | None,
) -> dict[str, str]:
    existing: dict[str, str] = {}
    if existing_file.exists():
        try:
            existing = parse_password_file(existing_file.read_text(encoding="utf-8"))
        except (ConfigError, OSError):
            existing = {}  # unreadable or foreign: every hash is made afresh
    hashes = {}
    for peer in peers:
        password = peer.password.reveal()
        old = existing.get(peer.username)
        if (
            old is not None
            and hash_iterations(old) == iterations
            and verify_password(password, old)
        ):
            hashes[peer.username] = old
        elif salt_source is None:
            hashes[peer.username] = hash_password(password, iterations=iterations)
        else:
            hashes[peer.username] = hash_password(
                password, iterations=iterations, salt_source=salt_source
            )
    return hashes
