"""Can this node reach its broker and upload server? Checked without any credential.

The broker gets a plain TCP connect (a successful connect says the port is open, not
that our password works: the node daemon's log says that). The upload server gets its
unauthenticated ``GET /health``. Both run in parallel with a short timeout so a dead
peer slows the dashboard by at most ``timeout_s``.
"""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fedward.config.model import BrokerEndpoint, UploadsEndpoint


@dataclass(frozen=True)
class Reachability:
    name: str
    address: str
    reachable: bool
    detail: str
    latency_ms: float | None = None


def check_broker(broker: BrokerEndpoint, timeout_s: float = 1.5) -> Reachability:
    address = f"{broker.host}:{broker.port}"
    started = time.monotonic()
    try:
        with socket.create_connection((broker.host, broker.port), timeout=timeout_s):
            pass
    except OSError as exc:
        return Reachability("broker", address, False, _reason(exc))
    elapsed = (time.monotonic() - started) * 1000
    return Reachability("broker", address, True, "TCP port open", elapsed)


def check_uploads(uploads: UploadsEndpoint, timeout_s: float = 1.5) -> Reachability:
    url = f"{uploads.base_url}/health"
    started = time.monotonic()
    try:
        # The URL is the node's configured upload server, http(s) only (UploadsEndpoint).
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        return Reachability("upload server", uploads.base_url, False, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        return Reachability("upload server", uploads.base_url, False, _reason(reason))
    elapsed = (time.monotonic() - started) * 1000
    if status != 200:
        return Reachability("upload server", uploads.base_url, False, f"HTTP {status}")
    return Reachability("upload server", uploads.base_url, True, "GET /health OK", elapsed)


def check_all(
    broker: BrokerEndpoint, uploads: UploadsEndpoint, timeout_s: float = 1.5
) -> list[Reachability]:
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="gui-connectivity") as pool:
        broker_check = pool.submit(check_broker, broker, timeout_s)
        uploads_check = pool.submit(check_uploads, uploads, timeout_s)
        return [broker_check.result(), uploads_check.result()]


def _reason(error: object) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return "no answer (timeout)"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
