"""Serve the GUI with uvicorn: TLS when given a certificate, loopback unless told otherwise."""

from __future__ import annotations

import logging

import uvicorn

from fedward.config.model import NodeConfig
from fedward.gui.app import create_app
from fedward.gui.context import open_gui_context
from fedward.gui.settings import GuiSettings

log = logging.getLogger("fedward.gui")

# How long a stop waits for open connections. Without a bound, a TLS connection that a
# browser keeps open holds the stop for asyncio's TLS shutdown timeout (30 s: the server
# waits for the client's close_notify before the connection counts as closed). Pages are
# answered in milliseconds, so a few seconds lose nothing a user is waiting for.
GRACEFUL_SHUTDOWN_S = 3


def serve(node: NodeConfig, settings: GuiSettings) -> None:
    """Run until interrupted; the node database and account database are closed after."""
    context = open_gui_context(node, settings)
    try:
        if not context.accounts.list():
            log.warning(
                "no GUI account exists yet: create the first administrator with "
                "'fedward gui adduser NAME --admin'"
            )
        config = uvicorn.Config(
            create_app(context),
            host=settings.host,
            port=settings.port,
            ssl_certfile=str(settings.certfile) if settings.certfile else None,
            ssl_keyfile=str(settings.keyfile) if settings.keyfile else None,
            proxy_headers=False,  # the client address feeds the login throttle: no spoofing
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            log_level="info",
        )
        uvicorn.Server(config).run()
    finally:
        context.close()
