"""The broker and the upload server, seen from the peer registry.

The registry decides who may talk: each node and researcher has a broker account (and the
ACL that ``fedward.protocol.topics.acl_rules`` gives its role) and an upload token. When a
peer is enrolled or revoked, the server re-renders the broker configuration into the
``mqtt`` enrolment folder and asks a running Mosquitto to reload it, and updates the token
file in the ``restful`` folder (the upload server re-reads it when it changes).

``PeerServices`` is the seam: ``FedwardServices`` drives the real ``fedward.broker`` and
``fedward.uploads``; unit tests pass a recording fake.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from fedward.config.model import Secret
from fedward.storage.atomic import atomic_write_text

AppRole = Literal["node", "researcher"]


@dataclass(frozen=True)
class BrokerAccount:
    role: AppRole
    peer_id: str
    password: Secret


class PeerServices(Protocol):
    def render_broker(
        self, accounts: Sequence[BrokerAccount], out_dir: Path, host: str, port: int
    ) -> None:
        """Write the complete broker configuration for exactly ``accounts`` into ``out_dir``."""

    def reload_broker(self, out_dir: Path) -> str:
        """Ask a broker running from ``out_dir`` to reload; say what happened, in words."""

    def set_token(self, tokens_file: Path, peer_id: str, token: Secret) -> None: ...

    def remove_token(self, tokens_file: Path, peer_id: str) -> None: ...


class FedwardServices:
    """The real broker and upload server (imported when first used)."""

    def render_broker(
        self, accounts: Sequence[BrokerAccount], out_dir: Path, host: str, port: int
    ) -> None:
        from fedward.broker.peers import BrokerPeer
        from fedward.broker.render import render_broker_config

        peers = [BrokerPeer(a.role, a.peer_id, a.password) for a in accounts]
        render_broker_config(peers, out_dir, host=host, port=port)

    def reload_broker(self, out_dir: Path) -> str:
        from fedward.broker.cli import PID_NAME

        if not (out_dir / PID_NAME).exists():
            return (
                "broker accounts and upload tokens changed: copy mqtt/broker/ and "
                "restful/uploads_tokens.json to their hosts, then on the broker's: "
                "fedward broker reload --config-dir mqtt/broker (no broker runs from "
                f"{out_dir} here)"
            )
        command = [sys.executable, "-m", "fedward.cli", "broker", "reload"]
        done = subprocess.run(
            [*command, "--config-dir", str(out_dir)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return (done.stdout or done.stderr).strip()

    def set_token(self, tokens_file: Path, peer_id: str, token: Secret) -> None:
        from fedward.uploads.tokens import set_token

        set_token(tokens_file, peer_id, token.reveal())

    def remove_token(self, tokens_file: Path, peer_id: str) -> None:
        from fedward.uploads.tokens import remove_token

        remove_token(tokens_file, peer_id)


def relocate_broker_config(broker_dir: Path) -> bool:
    """Point ``mosquitto.conf`` at the files next to it, once the folder was copied elsewhere."""
    from fedward.broker.render import BrokerFiles, read_broker_settings, render_mosquitto_conf
    from fedward.broker.run_as import default_broker_user

    files = BrokerFiles.in_dir(broker_dir)
    if not files.conf.exists():
        return False
    settings = read_broker_settings(files.conf)
    if settings.password_file == files.passwords and settings.acl_file == files.acl:
        return False
    text = render_mosquitto_conf(
        files, settings.host, settings.port, settings.message_size_limit, default_broker_user()
    )
    atomic_write_text(files.conf, text, mode=0o644)
    return True
