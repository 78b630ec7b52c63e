"""Where the VPN server and an enrolment folder keep their files.

Server state directory (``--state-dir``, ``FEDWARD_VPN_DIR``)::

    config.env                      server settings (VPN_* names)
    server.key                      the server's private key
    registry.json                   peers: address, preshared key, public keys
    wireguard/wg0.conf              the server interface, rendered from the registry
    config_peers/TYPE/ID/           one enrolment folder per peer (see ``PeerFolder``)
    run.json                        what ``fedward vpn up`` made, for ``down``
    .lock                           held while the registry changes

Enrolment folder (copied to the peer)::

    config.env                      the seed's fields
    private.key                     the peer's key (``genconf --with-key``, or made by ``connect``)
    broker_password, uploads_token  application credentials (nodes and researchers)
    fedward.env                     MQTT_BROKER, UPLOADS_URL, NODE_ID, ... for the node/researcher
    broker/                         (mqtt only) Mosquitto config rendered from the registry
    uploads_tokens.json             (restful only) the upload server's token file
    run.json                        what ``fedward vpn connect`` made, for ``down``
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fedward.vpn.settings import PeerType

BROKER_PEER_ID = "mqtt"
UPLOADS_PEER_ID = "restful"


@dataclass(frozen=True)
class PeerFolder:
    path: Path

    @property
    def config_env(self) -> Path:
        return self.path / "config.env"

    @property
    def private_key(self) -> Path:
        return self.path / "private.key"

    @property
    def broker_password(self) -> Path:
        return self.path / "broker_password"

    @property
    def uploads_token(self) -> Path:
        return self.path / "uploads_token"

    @property
    def app_env(self) -> Path:
        return self.path / "fedward.env"

    @property
    def broker_dir(self) -> Path:
        return self.path / "broker"

    @property
    def uploads_tokens(self) -> Path:
        return self.path / "uploads_tokens.json"

    @property
    def run_state(self) -> Path:
        return self.path / "run.json"


@dataclass(frozen=True)
class ServerLayout:
    root: Path

    @property
    def settings(self) -> Path:
        return self.root / "config.env"

    @property
    def private_key(self) -> Path:
        return self.root / "server.key"

    @property
    def registry(self) -> Path:
        return self.root / "registry.json"

    @property
    def wg_config(self) -> Path:
        return self.root / "wireguard" / "wg0.conf"

    @property
    def peers_dir(self) -> Path:
        return self.root / "config_peers"

    @property
    def run_state(self) -> Path:
        return self.root / "run.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    def peer_folder(self, peer_type: PeerType, peer_id: str) -> PeerFolder:
        # Only ever called with a validated id, so the path stays inside peers_dir.
        return PeerFolder(self.peers_dir / peer_type / peer_id)

    @property
    def broker_folder(self) -> PeerFolder:
        return self.peer_folder("management", BROKER_PEER_ID)

    @property
    def uploads_folder(self) -> PeerFolder:
        return self.peer_folder("management", UPLOADS_PEER_ID)
