"""Can this node reach its broker and upload server? Checked without any credential.

The broker gets a plain TCP connect (a successful connect says the port is open, not
that our password works: the node daemon's log says that). The upload server gets its
unauthenticated ``GET /health``. Both run in parallel, and the dashboard waits for them
at most ``CHECK_DEADLINE_S`` in all.

The upload check is a small HTTP exchange on a socket of its own, under one deadline for
the whole exchange: urllib's timeout is per read, so a server answering one byte a second
held every dashboard view, and a GUI thread, for as long as it kept dripping.
"""

from __future__ import annotations

import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from urllib.parse import urlsplit

from fedward.config.model import BrokerEndpoint, UploadsEndpoint

CHECK_TIMEOUT_S = 1.5
# Each check ends by itself within CHECK_TIMEOUT_S but for name resolution, which has no
# timeout of its own: the page stops waiting here whatever the check is doing.
CHECK_DEADLINE_S = 3.0
MAX_HEAD_BYTES = 16 << 10


@dataclass(frozen=True)
class Reachability:
    name: str
    address: str
    reachable: bool
    detail: str
    latency_ms: float | None = None


def check_broker(broker: BrokerEndpoint, timeout_s: float = CHECK_TIMEOUT_S) -> Reachability:
    address = f"{broker.host}:{broker.port}"
    started = time.monotonic()
    try:
        with socket.create_connection((broker.host, broker.port), timeout=timeout_s):
            pass
    except OSError as exc:
        return Reachability("broker", address, False, _reason(exc, timeout_s))
    elapsed = (time.monotonic() - started) * 1000
    return Reachability("broker", address, True, "TCP port open", elapsed)


def check_uploads(uploads: UploadsEndpoint, timeout_s: float = CHECK_TIMEOUT_S) -> Reachability:
    started = time.monotonic()
    try:
        status = _get_health_status(uploads.base_url, started + timeout_s)
    except (OSError, ValueError) as exc:  # ValueError: a bad port or a garbled answer
        return Reachability("upload server", uploads.base_url, False, _reason(exc, timeout_s))
    elapsed = (time.monotonic() - started) * 1000
    if status != 200:
        return Reachability("upload server", uploads.base_url, False, f"HTTP {status}")
    return Reachability("upload server", uploads.base_url, True, "GET /health OK", elapsed)


def _get_health_status(base_url: str, deadline: float) -> int:
    url = urlsplit(base_url)
    https = url.scheme == "https"
    host = url.hostname or ""
    port = url.port or (443 if https else 80)
    request = (
        f"GET {url.path}/health HTTP/1.1\r\nHost: {url.netloc.rpartition('@')[2]}\r\n"
        "User-Agent: fedward-gui\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=_remaining(deadline)) as raw:
        raw.settimeout(_remaining(deadline))
        # The handshake is one call: its timeout bounds it as a whole.
        connection = (
            ssl.create_default_context().wrap_socket(raw, server_hostname=host) if https else raw
        )
        with connection:
            connection.settimeout(_remaining(deadline))
            connection.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                if len(head) > MAX_HEAD_BYTES:
                    raise ValueError("an answer head over 16 KiB")
                connection.settimeout(_remaining(deadline))
                chunk = connection.recv(4096)
                if not chunk:
                    raise ConnectionResetError("closed before answering")
                head += chunk
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/"):
        raise ValueError("not an HTTP answer")
    return int(status_line[1])


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def check_all(
    broker: BrokerEndpoint,
    uploads: UploadsEndpoint,
    timeout_s: float = CHECK_TIMEOUT_S,
    deadline_s: float = CHECK_DEADLINE_S,
) -> list[Reachability]:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gui-connectivity")
    try:
        checks = [
            (
                pool.submit(check_broker, broker, timeout_s),
                "broker",
                f"{broker.host}:{broker.port}",
            ),
            (pool.submit(check_uploads, uploads, timeout_s), "upload server", uploads.base_url),
        ]
        wait_for([future for future, _, _ in checks], timeout=deadline_s)
        late = f"no answer within {deadline_s:g} s"
        return [
            future.result() if future.done() else Reachability(name, address, False, late)
            for future, name, address in checks
        ]
    finally:
        # Not waiting: a check stuck in name resolution ends on its own, off this page.
        pool.shutdown(wait=False, cancel_futures=True)


def _reason(error: object, timeout_s: float) -> str:
    if isinstance(error, TimeoutError | socket.timeout):
        return f"no answer within {timeout_s:g} s"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ssl.SSLError):
        return f"TLS: {error.reason or error}"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
