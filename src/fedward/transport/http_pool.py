"""Keep-alive HTTP/1.1 connections to one server, from the standard library's ``http.client``.

Why ``http.client`` and not a richer client: the blob store moves large bodies, and the
fastest way to move them is the plainest. Bodies are sent from files with ``sendfile``
(or from memory with one ``sendall``) straight onto the socket after the request head,
and read with ``readinto`` one reused buffer: a 100 MB download costs one pass through
Python instead of 1,600 chunk objects. Heads, status lines, keep-alive and chunked
answers are parsed by ``http.client``, which is maintained with the interpreter.

A connection goes back to the pool only when its answer was read to the end; anything
else (an error, a refused download left unread) closes it, so the next request never
reads a previous answer's leftovers. Proxies from the environment are never used:
``http.client`` knows none.
"""

from __future__ import annotations

import contextlib
import http.client
import ssl
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from fedward.errors import ValidationError

# http.client reads a status line and headers with its own limits (64 KiB a line, 100
# fields); an answer to the blob store is small or streamed, so these suffice.
POOL_SIZE = 8
# The upload server closes a connection idle for 30 s; one idle for this long is not
# reused, so a request rarely meets a connection the server is closing.
MAX_IDLE_S = 20.0


class HttpConnections:
    """Connections to ``base_url`` (``http://host:port`` or ``https://...``)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                f"upload server URL must start with http:// or https://: {base_url!r}"
            )
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValidationError(f"upload server URL must not have a path: {base_url!r}")
        self._host = parts.hostname
        self._port = parts.port
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._timeout_s = timeout_s
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Lease]:
        """A connection for one request; it is reused only if ``lease.reusable`` is set
        by the caller once the whole answer was read."""
        conn = self._take_idle()
        lease = Lease(conn or self._new(), reused=conn is not None)
        try:
            yield lease
        finally:
            if not (lease.reusable and self._keep(lease.conn)):
                lease.conn.close()

    def _keep(self, conn: http.client.HTTPConnection) -> bool:
        with self._lock:
            if len(self._idle) >= POOL_SIZE:
                return False
            self._idle.append((conn, time.monotonic()))
            return True

    def _take_idle(self) -> http.client.HTTPConnection | None:
        stale = []
        conn = None
        with self._lock:
            while self._idle:
                candidate, since = self._idle.pop()
                if time.monotonic() - since < MAX_IDLE_S:
                    conn = candidate
                    break
                stale.append(candidate)
        for old in stale:
            old.close()
        return conn

    @property
    def tls(self) -> bool:
        return self._tls is not None

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def _new(self) -> http.client.HTTPConnection:
        if self._tls is not None:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout_s, context=self._tls
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)


class Lease:
    def __init__(self, conn: http.client.HTTPConnection, reused: bool) -> None:
        self.conn = conn
        self.reused = reused  # came from the pool: the server may have closed it meanwhile
        self.reusable = False
