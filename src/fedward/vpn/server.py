"""The VPN server's state and the one way it changes: plan everything, then write.

Every command loads the state under the registry lock, checks its input, builds a
``PendingChanges`` in memory and only then writes it. So a refused command (bad id, unknown
type, malformed key, exhausted range, damaged ``config.env``...) changes no file at all.

The commands themselves (``genconf``, ``add``, ...) live in ``enrolment``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fedward.errors import NotFound, ValidationError
from fedward.storage.atomic import atomic_write_text
from fedward.storage.file_lock import exclusive_lock
from fedward.vpn.app_credentials import (
    AppCredentials,
    ServiceEndpoints,
    read_app_credentials,
)
from fedward.vpn.interface import RunState, interface_exists, sync_config
from fedward.vpn.keys import public_key_of, validate_key
from fedward.vpn.layout import BROKER_PEER_ID, UPLOADS_PEER_ID, ServerLayout
from fedward.vpn.peer_config import parse_peer_config, peer_config_for, render_peer_config
from fedward.vpn.registry import PeerRecord, Registry, load_registry, save_registry
from fedward.vpn.services import BrokerAccount, PeerServices
from fedward.vpn.settings import ServerSettings, read_settings
from fedward.vpn.wg_config import render_server_config

SECRET_MODE = 0o600


@dataclass(frozen=True)
class ServerState:
    layout: ServerLayout
    settings: ServerSettings
    private_key: str
    registry: Registry

    @property
    def public_key(self) -> str:
        return public_key_of(self.private_key)

    def rendered_config_env(self, record: PeerRecord) -> str:
        return render_peer_config(peer_config_for(record, self.settings, self.public_key))

    def check_peer_folder(self, record: PeerRecord) -> None:
        """Refuse to work on a peer whose ``config.env`` is missing or differs from the registry."""
        path = self.layout.peer_folder(record.peer_type, record.peer_id).config_env
        redo = f"fedward vpn removeconf {record.peer_type} {record.peer_id}, then genconf"
        try:
            actual = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise NotFound(f"{path} is missing", hint=redo) from exc
        if actual != self.rendered_config_env(record):
            parse_peer_config(actual, source=str(path), folder_name=record.peer_id)
            raise ValidationError(
                f"{path} differs from the registry (edited by hand?)",
                hint="'fedward vpn server init' rewrites every config.env from the registry",
            )

    def service_endpoints(self, registry: Registry) -> ServiceEndpoints:
        broker = _required_service(registry, BROKER_PEER_ID)
        uploads = _required_service(registry, UPLOADS_PEER_ID)
        return ServiceEndpoints(
            broker_host=str(broker.address),
            broker_port=self.settings.broker_port,
            uploads_url=f"http://{uploads.address}:{self.settings.uploads_port}",
        )


def _required_service(registry: Registry, peer_id: str) -> PeerRecord:
    record = registry.find("management", peer_id)
    if record is None:
        raise NotFound(
            f"the management peer {peer_id!r} is missing; nodes and researchers need it",
            hint=f"fedward vpn genconf management {peer_id}",
        )
    return record


@dataclass
class PendingChanges:
    """Everything one command will write, gathered before the first write."""

    registry: Registry
    writes: dict[Path, str] = field(default_factory=dict)
    new_credentials: dict[str, AppCredentials] = field(default_factory=dict)
    tokens_to_remove: list[str] = field(default_factory=list)
    folders_to_delete: list[Path] = field(default_factory=list)
    broker_changed: bool = False
    notes: list[str] = field(default_factory=list)


def read_private_key(path: Path) -> str:
    try:
        return validate_key(path.read_text(encoding="utf-8").strip(), what=f"private key in {path}")
    except FileNotFoundError as exc:
        raise NotFound(f"{path} does not exist") from exc


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and any missing parent with mode 0700 (``mkdir -p`` uses 0777)."""
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


def load_state(layout: ServerLayout) -> ServerState:
    if not layout.settings.exists():
        raise NotFound(
            f"no VPN server in {layout.root}",
            hint="run 'fedward vpn server init --public-addr HOST' first, or pass --state-dir",
        )
    return ServerState(
        layout=layout,
        settings=read_settings(layout.settings),
        private_key=read_private_key(layout.private_key),
        registry=load_registry(layout.registry),
    )


@contextmanager
def locked(layout: ServerLayout) -> Iterator[None]:
    make_private_dirs(layout.root)
    with exclusive_lock(layout.lock):
        yield


def _broker_accounts(state: ServerState, changes: PendingChanges) -> list[BrokerAccount]:
    accounts = []
    for peer in changes.registry.sorted_peers():
        if peer.peer_type == "node" or peer.peer_type == "researcher":
            credentials = changes.new_credentials.get(peer.peer_id) or read_app_credentials(
                state.layout.peer_folder(peer.peer_type, peer.peer_id)
            )
            accounts.append(
                BrokerAccount(peer.peer_type, peer.peer_id, credentials.broker_password)
            )
    return accounts


def commit(state: ServerState, changes: PendingChanges, services: PeerServices) -> None:
    """Write ``changes``: peer files, services, registry, then the server interface config."""
    layout = state.layout
    accounts = _broker_accounts(state, changes) if changes.broker_changed else []
    broker = changes.registry.find("management", BROKER_PEER_ID)
    for path, text in changes.writes.items():
        make_private_dirs(path.parent)
        atomic_write_text(path, text, mode=SECRET_MODE)
    tokens_file = layout.uploads_folder.uploads_tokens
    for peer_id, credentials in changes.new_credentials.items():
        services.set_token(tokens_file, peer_id, credentials.uploads_token)
    for peer_id in changes.tokens_to_remove:
        if tokens_file.exists():
            services.remove_token(tokens_file, peer_id)
    save_registry(layout.registry, changes.registry)
    wg_text = render_server_config(
        state.private_key, state.settings.port, changes.registry.sorted_peers()
    )
    make_private_dirs(layout.wg_config.parent)
    atomic_write_text(layout.wg_config, wg_text, mode=SECRET_MODE)
    if changes.broker_changed and broker is not None:
        broker_dir = layout.broker_folder.broker_dir
        make_private_dirs(broker_dir)
        services.render_broker(
            accounts, broker_dir, str(broker.address), state.settings.broker_port
        )
        # A broker enrolled just now runs nowhere yet: its first deployment copies the
        # folder anyway, so only later changes need a reload (or a reminder to copy).
        if state.registry.find("management", BROKER_PEER_ID) is not None:
            changes.notes.append(services.reload_broker(broker_dir))
    for folder in changes.folders_to_delete:
        shutil.rmtree(folder, ignore_errors=True)
    changes.notes.extend(apply_to_live_interface(layout))


def apply_to_live_interface(layout: ServerLayout) -> list[str]:
    """If ``fedward vpn up`` runs here, make the interface match ``wg0.conf`` now."""
    run_state = RunState.load(layout.run_state)
    if run_state is None:
        return []
    if not interface_exists(run_state.interface):
        return [f"interface {run_state.interface} is not up here; 'fedward vpn up' will apply it"]
    sync_config(run_state.interface, layout.wg_config)
    return [f"applied to the running interface {run_state.interface}"]


def credential_writes(
    layout: ServerLayout, record: PeerRecord, credentials: AppCredentials
) -> dict[Path, str]:
    folder = layout.peer_folder(record.peer_type, record.peer_id)
    return {
        folder.broker_password: credentials.broker_password.reveal() + "\n",
        folder.uploads_token: credentials.uploads_token.reveal() + "\n",
    }
