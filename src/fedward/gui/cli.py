"""``fedward gui``: serve the node's web GUI, and create its accounts from the shell.

There is no default account. The first administrator is made here, by someone who can
read the node's state directory::

    fedward gui adduser alice --admin --config node.toml
    fedward gui serve --config node.toml            # https with --cert/--key
"""

from __future__ import annotations

from pathlib import Path

import click

from fedward.config.loader import load_node_config
from fedward.errors import ValidationError
from fedward.gui.roles import ROLES
from fedward.gui.settings import DEFAULT_HOST, DEFAULT_PORT, GuiSettings

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The node's TOML configuration (else NODE_ID and the other node variables).",
)


@click.group("gui")
def gui() -> None:
    """The node's web GUI: datasets, training plans, jobs, users."""


@gui.command("serve")
@click.option(
    "--host",
    envvar="GUI_HOST",
    default=DEFAULT_HOST,
    show_default=True,
    help="Address to listen on (also GUI_HOST).",
)
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option(
    "--cert",
    "certfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TLS certificate (PEM); serve https.",
)
@click.option(
    "--key",
    "keyfile",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TLS private key (PEM) for --cert.",
)
@click.option(
    "--allow-plain-http",
    is_flag=True,
    help="Serve plain http on a non-loopback address (only behind a TLS proxy).",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    envvar="GUI_ALLOWED_HOSTS",
    metavar="NAME",
    help="A host name browsers use to reach the GUI, besides localhost and --host "
    "(repeatable; also GUI_ALLOWED_HOSTS, space-separated). Addresses need none.",
)
@config_option
def serve_command(
    host: str,
    port: int,
    certfile: Path | None,
    keyfile: Path | None,
    allow_plain_http: bool,
    allowed_hosts: tuple[str, ...],
    config_path: Path | None,
) -> None:
    """Serve the GUI (127.0.0.1:8484 unless told otherwise)."""
    from fedward.gui.server import serve  # uvicorn only when serving

    settings = GuiSettings(
        host=host,
        port=port,
        certfile=certfile,
        keyfile=keyfile,
        allow_plain_http=allow_plain_http,
        allowed_hosts=allowed_hosts,
    )
    serve(load_node_config(config_path), settings)


@gui.command("adduser")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Same as --role admin.")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default=None,
    help="viewer, approver or admin (default viewer).",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Read the password from this file instead of prompting.",
)
@config_option
def adduser_command(
    username: str,
    admin: bool,
    role: str | None,
    password_file: Path | None,
    config_path: Path | None,
) -> None:
    """Create a GUI account (the password is prompted for, twice)."""
    from fedward.gui.context import open_accounts
    from fedward.node.services import open_node_services_for

    if admin and role not in (None, "admin"):
        raise click.UsageError("--admin and --role viewer/approver contradict each other")
    chosen_role = "admin" if admin else role or "viewer"
    if password_file is not None:
        try:
            password = password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ValidationError(f"cannot read {password_file}: {exc.strerror}") from exc
    else:
        password = click.prompt(
            f"Password for {username}", hide_input=True, confirmation_prompt=True
        )
    node = load_node_config(config_path)
    database, accounts = open_accounts(node)
    try:
        account = accounts.create(username, password, chosen_role)
    finally:
        database.close()
    services = open_node_services_for(node)
    try:
        services.audit.record(
            "user_created", "cli", f"{account.username} as {account.role}", account.username
        )
    finally:
        services.close()
    click.echo(f"created GUI user {account.username} ({account.role}) for node {node.node_id}")
