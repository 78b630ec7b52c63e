"""How the GUI server runs: address, TLS, session lifetimes, sign-in throttling.

Validated once, before anything listens: a certificate without its key (or the reverse)
is refused, and so is a non-loopback address without TLS unless the operator says so
explicitly (``allow_plain_http``), because passwords and session cookies would cross
the network in clear text.

``allowed_hosts`` are the host names, besides ``localhost`` and the address it listens on,
that the GUI answers to (``trusted_hosts``: DNS rebinding); each must be a bare name.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from fedward.errors import ConfigError
from fedward.gui.login_throttle import ThrottlePolicy

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8484
LOOPBACK_NAME = "localhost"
# Letters, digits and inner hyphens per label, dot-separated (RFC 1123), 253 at most.
HOST_NAME_PATTERN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def is_loopback(host: str) -> bool:
    if host == LOOPBACK_NAME:
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
    allowed_hosts: tuple[str, ...] = ()

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
        for name in self.allowed_hosts:
            if not HOST_NAME_PATTERN.fullmatch(name.lower()):
                raise ConfigError(
                    f"allowed host {name!r} is not a host name",
                    hint="give the name browsers use, like gui.hospital.example: "
                    "no scheme, port, path or wildcard",
                )

    @property
    def tls(self) -> bool:
        return self.certfile is not None

    @property
    def trusted_host_names(self) -> tuple[str, ...]:
        """The names the GUI answers to (``trusted_hosts`` also takes any address)."""
        names = [LOOPBACK_NAME]
        if self.host and not _is_address(self.host):  # any address is trusted anyway
            names.append(self.host.lower())
        names.extend(name.lower() for name in self.allowed_hosts)
        return tuple(dict.fromkeys(names))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
