"""How the GUI server runs: address, TLS, session lifetimes, sign-in throttling.

Validated once, before anything listens: a certificate without its key (or the reverse)
is refused, and so is a non-loopback address without TLS unless the operator says so
explicitly (``allow_plain_http``), because passwords and session cookies would cross
the network in clear text.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from fedward.errors import ConfigError
from fedward.gui.login_throttle import ThrottlePolicy

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8484


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class GuiSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    certfile: Path | None = None
    keyfile: Path | None = None
    allow_plain_http: bool = False
    session_idle_timeout_s: float = 30 * 60
    session_max_age_s: float = 12 * 3600
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError(f"GUI port must be 0-65535, got {self.port}")
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("TLS needs both --cert and --key")
        for path in (self.certfile, self.keyfile):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"TLS file {path} does not exist")
        if not self.tls and not is_loopback(self.host) and not self.allow_plain_http:
            raise ConfigError(
                f"refusing to serve the GUI on {self.host} without TLS",
                hint="pass --cert and --key, bind 127.0.0.1 (e.g. behind an SSH tunnel), "
                "or --allow-plain-http if a TLS proxy sits in front",
            )

    @property
    def tls(self) -> bool:
        return self.certfile is not None
