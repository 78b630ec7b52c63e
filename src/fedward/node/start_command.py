"""``fedward node start``: placeholder until the daemon lands."""

from __future__ import annotations

import click


@click.command("start")
def start() -> None:
    """Start the node daemon (connects to the broker and serves requests)."""
    raise click.ClickException("not implemented yet")
