"""Answer only requests addressed to this GUI by name (DNS rebinding).

A page on ``attacker.example`` can make its name resolve to 127.0.0.1, or to the node's
address, once loaded, and then read the GUI's pages as its own origin: the browser still
sends ``Host: attacker.example``. So a request is served only when its Host is one of
the GUI's names (``GuiSettings.trusted_host_names``: ``localhost``, the name it listens
on, ``--allowed-host`` names) or an IP address literal; anything else gets 400.

Any address is accepted because a rebinding needs a name: a browser that sends an
address as Host connected to that address, and that address is the page's origin. This
keeps the GUI reachable at whichever address it is published on (a container bound to
0.0.0.0 cannot know it) without listing them. Names go to Starlette's
``TrustedHostMiddleware``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send


class TrustedHosts:
    def __init__(self, app: ASGIApp, *, names: Sequence[str]) -> None:
        self.app = app
        self._by_name = TrustedHostMiddleware(app, allowed_hosts=list(names), www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and is_address(
            Headers(scope=scope).get("host", "")
        ):
            await self.app(scope, receive, send)
            return
        await self._by_name(scope, receive, send)


def is_address(host_header: str) -> bool:
    """Whether a Host header is an IP address literal, with or without a port."""
    if host_header.startswith("["):
        address, bracket, rest = host_header[1:].partition("]")
        if not bracket:
            return False
    else:
        address, colon, port = host_header.partition(":")
        rest = colon + port
    if rest and not (rest.startswith(":") and rest[1:].isdigit() and rest[1:].isascii()):
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True
