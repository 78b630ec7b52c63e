"""``fedward broker``: render, run and reload the MQTT broker (``mqtt`` in the seed)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
from pathlib import Path

import click

from fedward.broker.embedded import EmbeddedBroker, serve_in_foreground
from fedward.broker.follow_files import run_following_files
from fedward.broker.peers import load_peers_file
from fedward.broker.process import find_mosquitto
from fedward.broker.render import (
    DEFAULT_MAX_CONNECTIONS,
    BrokerFiles,
    read_broker_settings,
    render_broker_config,
)
from fedward.broker.run_as import copy_for_account, needs_copy, runtime_dir_of
from fedward.config.model import DEFAULT_MAX_MESSAGE_BYTES
from fedward.errors import ConfigError, NotFound, TransportError
from fedward.storage.atomic import atomic_write_text

PID_NAME = "broker.pid"
_DIR = click.Path(path_type=Path, file_okay=False)


@click.group("broker")
def broker() -> None:
    """Render and run the MQTT broker: Mosquitto with passwords and an ACL."""


@broker.command("config")
@click.option(
    "--peers",
    "peers_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Peers file (TOML, format below).",
)
@click.option(
    "--out",
    "out_dir",
    type=_DIR,
    required=True,
    help="Directory to write mosquitto.conf, passwords and acl into.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Listen address: the broker's VPN address (10.220.0.2 in the seed).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=1883, show_default=True)
@click.option(
    "--max-message-bytes",
    type=click.IntRange(1),
    default=DEFAULT_MAX_MESSAGE_BYTES,
    show_default=True,
    help="Largest message payload; larger ones are dropped.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=DEFAULT_MAX_CONNECTIONS,
    show_default=True,
    help="Connections served at once; more are closed at once. Allow a few per peer.",
)
@click.option(
    "--run-as",
    default=None,
    help="User Mosquitto switches to when started as root "
    "[default: mosquitto when you are root, else you].",
)
def config(
    peers_file: Path,
    out_dir: Path,
    host: str,
    port: int,
    max_message_bytes: int,
    max_connections: int,
    run_as: str | None,
) -> None:
    """Write the broker configuration for the peers in the peers file.

    \b
    The peers file lists one table per peer; each password file holds
    that peer's broker password (the username is the peer id):
        [[peers]]
        role = "node"            # or "researcher"
        id = "node1"
        password_file = "secrets/node1.password"   # relative to the peers file

    Running it again after a change rewrites the files atomically; then
    'fedward broker reload' makes a running broker use them.
    """
    peers = load_peers_file(peers_file)
    files = render_broker_config(
        peers,
        out_dir,
        host,
        port,
        max_message_bytes,
        run_as=run_as,
        max_connections=max_connections,
    )
    click.echo(
        f"wrote {files.conf}, {files.passwords.name} and {files.acl.name} for {len(peers)} peers"
    )


@broker.command("run")
@click.option(
    "--config-dir", type=_DIR, required=True, help="Directory written by 'fedward broker config'."
)
@click.option(
    "--embedded", is_flag=True, help="Run the embedded Python broker instead of Mosquitto."
)
@click.option(
    "--pid-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help=f"[default: CONFIG_DIR/{PID_NAME}]",
)
@click.option(
    "--follow-files/--no-follow-files",
    default=True,
    show_default=True,
    help="Reload the broker whenever its passwords or ACL file changes.",
)
def run(config_dir: Path, embedded: bool, pid_file: Path | None, follow_files: bool) -> None:
    """Run the broker in the foreground.

    \b
    It re-reads its passwords and ACL whenever they change (a revoked peer
    is refused within a second or so), and on SIGHUP. Mosquitto runs as a
    child of this process; signals are passed on to it.
    """
    files = BrokerFiles.in_dir(config_dir)
    if not files.conf.is_file():
        raise ConfigError(f"{files.conf} does not exist", hint="run 'fedward broker config' first")
    pid_path = pid_file or files.conf.parent / PID_NAME
    followed = [files.passwords, files.acl] if follow_files else []
    if embedded:
        _run_embedded(config_dir, pid_path, followed)
        return
    executable = find_mosquitto()
    if executable is None:
        raise TransportError(
            "mosquitto is not installed",
            hint="install the 'mosquitto' package, or pass --embedded for the Python broker",
        )
    conf = files.conf
    copied = needs_copy(read_broker_settings(files.conf).user)
    if copied:
        conf = copy_for_account(files).conf  # Mosquitto drops root before reading them
    argv = [executable, "-c", str(conf)]
    if not followed:
        # exec keeps our pid, so the pid file names the broker itself.
        atomic_write_text(pid_path, f"{os.getpid()}\n")
        os.execv(executable, argv)  # noqa: S606 - fixed argv
    # The pid file names this process, which passes SIGHUP on to Mosquitto.
    atomic_write_text(pid_path, f"{os.getpid()}\n")
    try:
        # The broker's account reads a copy: refresh it before each reload.
        refresh = (lambda: copy_for_account(files)) if copied else None
        status = run_following_files(argv, followed, on_change=refresh)
    finally:
        with contextlib.suppress(OSError):
            pid_path.unlink()
    if status:
        raise SystemExit(status if status > 0 else 128 - status)


@broker.command("reload")
@click.option(
    "--config-dir", type=_DIR, default=None, help=f"Find the pid in CONFIG_DIR/{PID_NAME}."
)
@click.option("--pid-file", type=click.Path(path_type=Path, dir_okay=False), default=None)
def reload(config_dir: Path | None, pid_file: Path | None) -> None:
    """Make a running broker re-read its passwords and ACL (SIGHUP)."""
    if pid_file is None:
        if config_dir is None:
            raise click.UsageError("give --config-dir or --pid-file")
        pid_file = config_dir / PID_NAME
    pid = _running_broker_pid(pid_file)
    if config_dir is not None:
        files = BrokerFiles.in_dir(config_dir)
        if runtime_dir_of(files).is_dir() and needs_copy(read_broker_settings(files.conf).user):
            copy_for_account(files)  # the broker's account reads the copy, not these files
    os.kill(pid, signal.SIGHUP)
    click.echo(f"broker {pid} reloads its passwords and ACL")


def _run_embedded(config_dir: Path, pid_path: Path, followed: list[Path]) -> None:
    broker_ = EmbeddedBroker.from_config_dir(config_dir)
    atomic_write_text(pid_path, f"{os.getpid()}\n")
    try:
        asyncio.run(serve_in_foreground(broker_, follow=followed))
    finally:
        with contextlib.suppress(OSError):
            pid_path.unlink()


def _running_broker_pid(pid_file: Path) -> int:
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError as exc:
        raise NotFound(f"no pid file {pid_file}", hint="is the broker running?") from exc
    except ValueError as exc:
        raise ConfigError(f"pid file {pid_file} does not hold a process id") from exc
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except FileNotFoundError as exc:
        raise NotFound(f"no broker runs as pid {pid} (stale {pid_file})") from exc
    except OSError:
        return pid  # no /proc here: trust the pid file
    if not _is_broker_command(args):
        raise NotFound(f"pid {pid} from {pid_file} is not a broker (stale pid file)")
    return pid


def _is_broker_command(args: list[str]) -> bool:
    """Mosquitto, 'fedward broker run' or 'python -m fedward.broker.embedded'."""
    pairs = itertools.pairwise(args)
    return (
        Path(args[0]).name == "mosquitto"
        or ("broker", "run") in pairs
        or "fedward.broker.embedded" in args
    )
