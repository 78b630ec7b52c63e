"""A peer's application credentials and environment, kept in its enrolment folder.

Nodes and researchers get a broker password (their broker user is their id) and an upload
token, next to ``config.env``, plus ``fedward.env`` with the variables the node and the
researcher read (``MQTT_BROKER``, ``UPLOADS_URL``, ``NODE_ID``, the secret file paths). So
one folder enrols a peer: ``fedward vpn connect DIR``, then start the node with ``DIR``'s
``fedward.env``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from fedward.config.model import Secret
from fedward.errors import NotFound, ValidationError
from fedward.vpn.envfile import parse_env, render_env
from fedward.vpn.layout import PeerFolder
from fedward.vpn.settings import PeerType

APP_PEER_TYPES: tuple[PeerType, ...] = ("node", "researcher")
_ID_VARIABLES: dict[PeerType, str] = {"node": "NODE_ID", "researcher": "RESEARCHER_ID"}
_HEADER = (
    "fedward settings for this peer, written by 'fedward vpn genconf'.\n"
    "Load them before starting the node or researcher:  set -a; . ./fedward.env; set +a"
)
_APP_ENV_KEYS = (
    "MQTT_BROKER",
    "MQTT_BROKER_PORT",
    "UPLOADS_URL",
    "FEDWARD_BROKER_USERNAME",
    "FEDWARD_BROKER_PASSWORD_FILE",
    "FEDWARD_UPLOADS_TOKEN_FILE",
)


@dataclass(frozen=True)
class AppCredentials:
    broker_password: Secret
    uploads_token: Secret


@dataclass(frozen=True)
class ServiceEndpoints:
    """Where peers reach the broker and the upload server inside the VPN."""

    broker_host: str
    broker_port: int
    uploads_url: str


def new_app_credentials() -> AppCredentials:
    return AppCredentials(
        broker_password=Secret(secrets.token_urlsafe(24)),
        uploads_token=Secret(secrets.token_urlsafe(32)),
    )


def read_app_credentials(folder: PeerFolder) -> AppCredentials:
    try:
        password = folder.broker_password.read_text(encoding="utf-8").strip()
        token = folder.uploads_token.read_text(encoding="utf-8").strip()
    except FileNotFoundError as exc:
        raise NotFound(
            f"the application credentials in {folder.path} are missing ({exc.filename})",
            hint="revoke the peer and enrol it again",
        ) from exc
    if not password or not token:
        raise ValidationError(f"an application credential in {folder.path} is empty")
    return AppCredentials(Secret(password), Secret(token))


def render_app_env(
    peer_type: PeerType, peer_id: str, endpoints: ServiceEndpoints, folder: PeerFolder
) -> str:
    """``fedward.env`` for a node or researcher whose folder sits at ``folder``."""
    absolute = PeerFolder(Path(folder.path).absolute())
    values = {
        "MQTT_BROKER": endpoints.broker_host,
        "MQTT_BROKER_PORT": str(endpoints.broker_port),
        "UPLOADS_URL": endpoints.uploads_url,
        _ID_VARIABLES[peer_type]: peer_id,
        "FEDWARD_BROKER_USERNAME": peer_id,
        "FEDWARD_BROKER_PASSWORD_FILE": str(absolute.broker_password),
        "FEDWARD_UPLOADS_TOKEN_FILE": str(absolute.uploads_token),
    }
    try:
        return render_env(values, header=_HEADER)
    except ValidationError as exc:
        raise ValidationError(
            f"cannot write {folder.app_env}: {exc.message}",
            hint="keep the enrolment folder on a path without spaces or quotes",
        ) from exc


def read_app_env(folder: PeerFolder) -> dict[str, str]:
    """The variables of ``folder``'s ``fedward.env`` (strictly read, like ``config.env``)."""
    return parse_env(
        folder.app_env.read_text(encoding="utf-8"),
        source=str(folder.app_env),
        required=_APP_ENV_KEYS,
        optional=_ID_VARIABLES.values(),
    )


def relocated_app_env(peer_type: PeerType, peer_id: str, folder: PeerFolder) -> str | None:
    """``fedward.env`` rewritten for where ``folder`` is now (it was copied to the site)."""
    if peer_type not in APP_PEER_TYPES or not folder.app_env.exists():
        return None
    values = read_app_env(folder)
    if not values["MQTT_BROKER_PORT"].isdigit():
        raise ValidationError(f"{folder.app_env}: MQTT_BROKER_PORT is not a number")
    endpoints = ServiceEndpoints(
        broker_host=values["MQTT_BROKER"],
        broker_port=int(values["MQTT_BROKER_PORT"]),
        uploads_url=values["UPLOADS_URL"],
    )
    return render_app_env(peer_type, peer_id, endpoints, folder)
