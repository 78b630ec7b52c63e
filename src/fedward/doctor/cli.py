"""``fedward doctor ROLE``: check this machine's part of the federation.

Each command takes the options of the role's own command, so the same settings are read::

    sudo fedward doctor server                                  # like fedward vpn ...
    sudo fedward doctor broker --config-dir mqtt/broker          # like fedward broker run
    sudo fedward doctor uploads --host 10.220.0.3 --data-dir D --tokens restful/uploads_tokens.json
    sudo fedward doctor node [--config node.toml] [--gpu]        # like fedward node start
    sudo fedward doctor researcher [--config researcher.toml]

Exit status 0 when every check passed, 1 otherwise; ``--json`` for scripts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from fedward.doctor.outcome import Check, run_checks

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
vpn_folder_option = click.option(
    "--vpn-folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The VPN enrolment folder [default: where fedward.env puts the secret files].",
)


@click.group("doctor", context_settings={"help_option_names": ["-h", "--help"]})
def doctor() -> None:
    """Check this machine's part of the federation; say how to fix what fails.

    One command per role. Each prints one row per check (✔ passed, ✘ failed with the fix,
    ○ not checked) and exits with status 0 only when every check passed.
    """


def _report(role: str, checks: Callable[[], list[Check]], as_json: bool) -> None:
    report = run_checks(role, checks())
    click.echo(report.as_json() if as_json else report.as_table())
    if not report.ok:
        raise click.exceptions.Exit(report.exit_code)


@doctor.command("node")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--node-id", help="Node id (overrides the config and NODE_ID).")
@vpn_folder_option
@click.option("--gpu", is_flag=True, help="Also check that a CUDA device is visible.")
@click.option("--gpu-num", type=click.IntRange(min=0), default=None, help="The device to check.")
@json_option
def node(
    config_path: Path | None,
    state_dir: Path | None,
    node_id: str | None,
    vpn_folder: Path | None,
    gpu: bool,
    gpu_num: int | None,
    as_json: bool,
) -> None:
    """A node: VPN, broker, upload server, clock, datasets, job isolation, GPU, disk."""
    from fedward.config.loader import enrolment_folder, load_node_config
    from fedward.doctor.roles import node_checks
    from fedward.node.start_command import with_gpu_flags

    config = load_node_config(config_path, node_id=node_id, state_dir=state_dir)
    config = with_gpu_flags(config, "allowed" if gpu else None, gpu_num)
    folder = vpn_folder or enrolment_folder()
    _report(f"node {config.node_id}", lambda: node_checks(config, folder, gpu=gpu), as_json)


@doctor.command("researcher")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@vpn_folder_option
@json_option
def researcher(config_path: Path | None, vpn_folder: Path | None, as_json: bool) -> None:
    """A researcher: VPN, broker, upload server, clock, disk."""
    from fedward.config.loader import enrolment_folder, load_researcher_config
    from fedward.doctor.roles import researcher_checks

    config = load_researcher_config(config_path)
    folder = vpn_folder or enrolment_folder()
    role = f"researcher {config.researcher_id}"
    _report(role, lambda: researcher_checks(config, folder), as_json)


@doctor.command("server")
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="FEDWARD_VPN_DIR",
    default=Path("~/.fedward/vpn"),
    show_default=True,
    help="The VPN server's directory (env FEDWARD_VPN_DIR), as for 'fedward vpn'.",
)
@json_option
def server(state_dir: Path, as_json: bool) -> None:
    """The VPN server: its state, the hub interface, forwarding, every peer's handshake."""
    from fedward.doctor.roles import server_checks

    root = state_dir.expanduser()
    _report("vpn server", lambda: server_checks(root), as_json)


@doctor.command("broker")
@click.option(
    "--config-dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="The broker's folder, as for 'fedward broker run' (mqtt/broker).",
)
@json_option
def broker(config_dir: Path, as_json: bool) -> None:
    """The broker's host: VPN, the rendered configuration, Mosquitto answering."""
    from fedward.doctor.roles import broker_checks

    _report("broker", lambda: broker_checks(config_dir), as_json)


@doctor.command("uploads")
@click.option("--host", default="127.0.0.1", show_default=True, help="As for 'uploads serve'.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--tokens", "tokens_file", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@json_option
def uploads(host: str, port: int, data_dir: Path, tokens_file: Path, as_json: bool) -> None:
    """The upload server's host: VPN, tokens, data folder, the server answering."""
    from fedward.doctor.roles import upload_server_checks

    _report(
        "upload server",
        lambda: upload_server_checks(host, port, data_dir, tokens_file),
        as_json,
    )
