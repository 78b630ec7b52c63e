"""Peer management on the VPN server: the seed's ``configure_peer`` commands, made safe.

``VpnServer`` offers ``init``, ``genconf``, ``add``, ``remove``, ``removeconf``, ``revoke``
and ``peers``. Each runs under the registry lock and plans before it writes (see
``server``), so concurrent runs get distinct addresses and a refused command changes nothing.

Beyond the seed:

- ``genconf`` also writes the peer's broker password, upload token and ``fedward.env``, so
  one folder enrols a peer; ``genconf --with-key`` also makes and registers its key pair.
- ``revoke`` (= ``removeconf``) removes the peer from WireGuard, the broker (re-rendered and
  reloaded) and the upload server's token file in one step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from fedward.core.ids import validate_id
from fedward.errors import ConfigError, Conflict
from fedward.vpn.app_credentials import APP_PEER_TYPES, new_app_credentials, render_app_env
from fedward.vpn.keys import KeySource, RandomKeys, validate_key
from fedward.vpn.layout import BROKER_PEER_ID, UPLOADS_PEER_ID, ServerLayout
from fedward.vpn.registry import PeerRecord, Registry, load_registry
from fedward.vpn.server import (
    PendingChanges,
    ServerState,
    commit,
    credential_writes,
    load_state,
    locked,
    read_private_key,
)
from fedward.vpn.services import FedwardServices, PeerServices
from fedward.vpn.settings import (
    PeerType,
    ServerSettings,
    read_settings,
    render_settings,
    settings_from_env,
)

SERVICE_PEERS = (BROKER_PEER_ID, UPLOADS_PEER_ID)


@dataclass(frozen=True)
class Outcome:
    """What a command did, in words for the operator."""

    changed: bool
    messages: list[str] = field(default_factory=list)
    folder: Path | None = None


class VpnServer:
    def __init__(
        self,
        root: Path,
        *,
        keys: KeySource | None = None,
        services: PeerServices | None = None,
    ) -> None:
        self.layout = ServerLayout(Path(root))
        self.keys = keys or RandomKeys()
        self.services = services or FedwardServices()

    # -- server -----------------------------------------------------------------------

    def init(self, overrides: Mapping[str, str]) -> Outcome:
        """Create (or update) the server; also enrol the ``mqtt`` and ``restful`` peers."""
        layout = self.layout
        with locked(layout):
            previous = read_settings(layout.settings) if layout.settings.exists() else None
            settings = settings_from_env(dict(overrides), base=previous)
            registry = load_registry(layout.registry)
            _check_plan_keeps_peers(settings, registry)
            changes = PendingChanges(registry)
            if layout.private_key.exists():
                private_key = read_private_key(layout.private_key)
            else:
                private_key = self.keys.key_pair().private_key
                changes.writes[layout.private_key] = private_key + "\n"
            state = ServerState(layout, settings, private_key, registry)
            changes.writes[layout.settings] = render_settings(settings)
            for record in registry.peers:  # the endpoint or ports may have changed
                self._plan_peer_files(state, changes, record)
            for peer_id in SERVICE_PEERS:
                if registry.find("management", peer_id) is None:
                    self._plan_new_peer(state, changes, "management", peer_id, with_key=True)
            commit(state, changes, self.services)
        verb = "updated" if previous else "created"
        messages = [f"VPN server {verb} in {layout.root} (endpoint {settings.endpoint})"]
        if previous and previous != settings:
            messages.append("peer config.env files were rewritten: copy them to the peers again")
        return Outcome(True, messages + changes.notes, layout.root)

    # -- peers ------------------------------------------------------------------------

    def genconf(self, peer_type: PeerType, peer_id: str, *, with_key: bool = False) -> Outcome:
        validate_id(peer_id, kind=f"{peer_type} id")
        with locked(self.layout):
            state = load_state(self.layout)
            state.registry.check_id_free(peer_type, peer_id)
            folder = self.layout.peer_folder(peer_type, peer_id)
            changes = PendingChanges(state.registry)
            existing = state.registry.find(peer_type, peer_id)
            if existing is not None:
                state.check_peer_folder(existing)
                if not with_key or existing.public_keys or folder.private_key.exists():
                    message = f"{peer_type} {peer_id} already exists; nothing changed"
                    return Outcome(False, [message], folder.path)
                self._plan_key(changes, existing)
            else:
                # An empty folder is free (Docker creates missing mount points empty).
                if folder.path.exists() and any(folder.path.iterdir()):
                    raise Conflict(
                        f"{folder.path} exists but {peer_type} {peer_id} is not registered",
                        hint="it was left by an interrupted command: delete it and retry",
                    )
                self._plan_new_peer(state, changes, peer_type, peer_id, with_key=with_key)
            commit(state, changes, self.services)
        record = changes.registry.get(peer_type, peer_id)
        messages = [f"{peer_type} {peer_id}: {record.address}, enrolment folder {folder.path}"]
        if with_key:
            messages.append(
                f"key registered; on the peer run: fedward vpn connect {folder.path.name}"
            )
        else:
            messages.append(
                "on the peer run 'fedward vpn connect FOLDER', then register the key it prints "
                f"here: fedward vpn add {peer_type} {peer_id} PUBLIC_KEY"
            )
        return Outcome(True, messages + changes.notes, folder.path)

    def add(self, peer_type: PeerType, peer_id: str, public_key: str) -> Outcome:
        validate_id(peer_id, kind=f"{peer_type} id")
        validate_key(public_key, what="public key")
        with locked(self.layout):
            state = load_state(self.layout)
            record = state.registry.get(peer_type, peer_id)
            state.check_peer_folder(record)
            if public_key == state.public_key:
                raise Conflict(
                    "that is the VPN server's own public key", hint="pass the peer's key"
                )
            owner = state.registry.owner_of_key(public_key)
            if owner == record:
                return Outcome(False, [f"{peer_type} {peer_id} already has this key"])
            if owner is not None:
                raise Conflict(
                    f"this public key is already registered for {owner.peer_type} {owner.peer_id}",
                    hint="every peer needs its own key pair",
                )
            updated = replace(record, public_keys=(*record.public_keys, public_key))
            changes = PendingChanges(state.registry.with_peer(updated))
            commit(state, changes, self.services)
        return Outcome(True, [f"added a key to {peer_type} {peer_id}", *changes.notes])

    def remove(self, peer_type: PeerType, peer_id: str) -> Outcome:
        """Unregister the peer's keys; keep its folder so a new key can be added."""
        validate_id(peer_id, kind=f"{peer_type} id")
        with locked(self.layout):
            state = load_state(self.layout)
            record = state.registry.get(peer_type, peer_id)
            if not record.public_keys:
                return Outcome(False, [f"{peer_type} {peer_id} has no registered key"])
            changes = PendingChanges(state.registry.with_peer(replace(record, public_keys=())))
            commit(state, changes, self.services)
        return Outcome(True, [f"removed the keys of {peer_type} {peer_id}", *changes.notes])

    def removeconf(self, peer_type: PeerType, peer_id: str) -> Outcome:
        """Remove the peer everywhere: keys, folder, broker account, upload token."""
        validate_id(peer_id, kind=f"{peer_type} id")
        with locked(self.layout):
            state = load_state(self.layout)
            record = state.registry.get(peer_type, peer_id)
            _check_not_needed(state.registry, record)
            changes = PendingChanges(state.registry.without_peer(peer_type, peer_id))
            changes.folders_to_delete.append(self.layout.peer_folder(peer_type, peer_id).path)
            if peer_type in APP_PEER_TYPES:
                changes.tokens_to_remove.append(peer_id)
                changes.broker_changed = True
            commit(state, changes, self.services)
        done = [f"{len(record.public_keys)} WireGuard key(s)", "enrolment folder"]
        if peer_type in APP_PEER_TYPES:
            done += ["broker account", "upload token"]
        return Outcome(True, [f"{peer_type} {peer_id}: removed " + ", ".join(done), *changes.notes])

    def revoke(self, peer_type: PeerType, peer_id: str) -> Outcome:
        return self.removeconf(peer_type, peer_id)

    def peers(self) -> list[PeerRecord]:
        return load_state(self.layout).registry.sorted_peers()

    # -- planning ---------------------------------------------------------------------

    def _plan_key(self, changes: PendingChanges, record: PeerRecord) -> PeerRecord:
        pair = self.keys.key_pair()
        folder = self.layout.peer_folder(record.peer_type, record.peer_id)
        changes.writes[folder.private_key] = pair.private_key + "\n"
        updated = replace(record, public_keys=(*record.public_keys, pair.public_key))
        changes.registry = changes.registry.with_peer(updated)
        return updated

    def _plan_new_peer(
        self,
        state: ServerState,
        changes: PendingChanges,
        peer_type: PeerType,
        peer_id: str,
        *,
        with_key: bool,
    ) -> None:
        address, registry = changes.registry.allocate(peer_type, state.settings)
        record = PeerRecord(peer_type, peer_id, address, self.keys.preshared_key())
        changes.registry = registry.with_peer(record)
        if with_key:
            record = self._plan_key(changes, record)
        if peer_type in APP_PEER_TYPES:
            credentials = new_app_credentials()
            changes.new_credentials[peer_id] = credentials
            changes.writes.update(credential_writes(self.layout, record, credentials))
            changes.broker_changed = True
        if (peer_type, peer_id) == ("management", BROKER_PEER_ID):
            changes.broker_changed = True
        self._plan_peer_files(state, changes, record)

    def _plan_peer_files(
        self, state: ServerState, changes: PendingChanges, record: PeerRecord
    ) -> None:
        folder = self.layout.peer_folder(record.peer_type, record.peer_id)
        changes.writes[folder.config_env] = state.rendered_config_env(record)
        if record.peer_type in APP_PEER_TYPES:
            endpoints = state.service_endpoints(changes.registry)
            changes.writes[folder.app_env] = render_app_env(
                record.peer_type, record.peer_id, endpoints, folder
            )


def _check_plan_keeps_peers(settings: ServerSettings, registry: Registry) -> None:
    for peer in registry.peers:
        if peer.address not in settings.range_of(peer.peer_type) or peer.address == settings.vpn_ip:
            raise ConfigError(
                f"{peer.peer_type} {peer.peer_id} has {peer.address}, outside the new "
                f"{peer.peer_type} range {settings.range_of(peer.peer_type)}",
                hint="an address plan can grow but must keep the addresses already given",
            )


def _check_not_needed(registry: Registry, record: PeerRecord) -> None:
    if record.peer_type != "management" or record.peer_id not in SERVICE_PEERS:
        return
    users = [p for p in registry.peers if p.peer_type in APP_PEER_TYPES]
    if users:
        raise Conflict(
            f"the {record.peer_id} folder holds the service configuration of {len(users)} peer(s)",
            hint="revoke the nodes and researchers first",
        )
