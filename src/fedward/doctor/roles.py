"""Which checks each role runs, from the same settings as that role's own commands.

    server      the VPN state directory (``fedward vpn``)
    broker      the broker's configuration folder (``fedward broker run --config-dir``)
    uploads     the upload server's options (``fedward uploads serve``)
    node        the node's configuration (``fedward node start``)
    researcher  the researcher's configuration (``fedward researcher``)

Peers find their VPN enrolment folder where their ``fedward.env`` points the secret files
(or ``--vpn-folder``); the broker and the upload server next to their configuration. Where
there is none (the demo runs without a VPN), the VPN rows are skipped, not failed.
"""

from __future__ import annotations

from pathlib import Path

from fedward.config.model import NodeConfig, ResearcherConfig
from fedward.doctor.broker_checks import broker_host_checks, peer_broker_checks
from fedward.doctor.host_checks import disk_check, node_host_checks
from fedward.doctor.outcome import Check, Outcome, failed, skipped
from fedward.doctor.upload_checks import peer_upload_checks, upload_host_checks
from fedward.doctor.vpn_checks import (
    INTERFACE,
    peer_vpn_checks,
    ping_check_name,
    server_vpn_checks,
)
from fedward.errors import FedwardError
from fedward.vpn.peer_config import CONFIG_ENV


def _vpn(folder: Path | None) -> tuple[list[Check], tuple[str, ...]]:
    """The VPN rows, and what the network rows after them need."""
    if folder is None or not (folder / CONFIG_ENV).is_file():
        where = "none given" if folder is None else f"{folder} has no {CONFIG_ENV}"

        def no_vpn() -> Outcome:
            return skipped(f"no VPN enrolment folder ({where}): pass --vpn-folder to check it")

        return [Check("vpn", no_vpn)], ()
    try:
        return peer_vpn_checks(folder), (ping_check_name(folder),)
    except FedwardError as exc:  # a damaged config.env: one row says so
        problem = failed(exc.message, exc.hint or "copy the folder from the VPN server again")
        return [Check("vpn", lambda: problem)], ("vpn",)


def node_checks(config: NodeConfig, vpn_folder: Path | None, *, gpu: bool) -> list[Check]:
    vpn, network = _vpn(vpn_folder)
    return [
        *vpn,
        *peer_broker_checks("node", config.node_id, config.broker, needs=network),
        *peer_upload_checks(config.uploads, needs=network),
        *node_host_checks(config, gpu=gpu),
    ]


def researcher_checks(config: ResearcherConfig, vpn_folder: Path | None) -> list[Check]:
    vpn, network = _vpn(vpn_folder)
    return [
        *vpn,
        *peer_broker_checks("researcher", config.researcher_id, config.broker, needs=network),
        *peer_upload_checks(config.uploads, needs=network),
        disk_check("researcher state", config.state_dir),
    ]


def server_checks(state_dir: Path) -> list[Check]:
    return [*server_vpn_checks(state_dir), disk_check("VPN state", state_dir)]


def broker_checks(config_dir: Path) -> list[Check]:
    vpn, _ = _vpn(config_dir.absolute().parent)
    # Mosquitto listens on the broker's VPN address, which exists only while the tunnel is up.
    needs = (INTERFACE,) if any(c.name == INTERFACE for c in vpn) else ()
    return [*vpn, *broker_host_checks(config_dir, needs=needs), disk_check("broker", config_dir)]


def upload_server_checks(host: str, port: int, data_dir: Path, tokens_file: Path) -> list[Check]:
    vpn, _ = _vpn(tokens_file.absolute().parent)
    needs = (INTERFACE,) if any(c.name == INTERFACE for c in vpn) else ()
    return [
        *vpn,
        *upload_host_checks(host, port, data_dir, tokens_file, needs=needs),
        disk_check("uploads", data_dir),
    ]
