"""The upload server's HTTP/1.1 server: one thread per connection, bytes moved by the kernel.

Why not an asyncio framework: the server's work is moving large bodies between sockets
and files. Here a download is ``sendfile`` (file to socket inside the kernel, no copy
through Python) and an upload is ``recv_into`` one reused buffer, hashed and written from
it; ``hashlib``, ``recv_into``, ``write`` and ``sendfile`` all release the GIL, so
connections proceed in parallel on every core. Under uvicorn each 64 KiB of a body was an
event-loop turn and each MiB a hop to an executor thread; a 100 MB upload took 2-3 times
longer than the disk and the hash needed.

What the threads cost is bounded: at most ``max_connections`` at once and
``max_per_address`` from one address (more are closed on accept: one peer holding idle
connections cannot lock the others out), a request head must arrive within
``head_timeout_s``, an idle keep-alive connection is closed after ``idle_timeout_s``, and
a body or a reply that stalls for ``io_timeout_s`` ends its connection. Request heads
are parsed strictly (``http_wire``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable

from fedward.errors import TransportError
from fedward.uploads.http_connection import (
    DEFAULT_TIMEOUTS,
    Handler,
    Timeouts,
    serve_connection,
)

log = logging.getLogger("fedward.uploads")


class BlobHttpServer:
    """Serves ``handler`` on ``listener`` until ``stop()``; ``serve_forever`` blocks."""

    def __init__(
        self,
        handler: Handler,
        listener: socket.socket,
        *,
        max_connections: int = 512,
        max_per_address: int = 64,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
    ) -> None:
        self._handler = handler
        self._listener = listener
        self._max_connections = max_connections
        self._max_per_address = max_per_address
        self._per_address: dict[str, int] = {}
        self._timeouts = timeouts
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._busy: set[socket.socket] = set()  # inside a request, not idle between two
        self.started = threading.Event()

    def serve_forever(self) -> None:
        self._listener.setblocking(False)
        listening = self._listener.fileno()
        self.started.set()
        try:
            while not self._stopping.is_set():
                ready, _, _ = select.select([listening, self._wake_r], [], [])
                if listening in ready:
                    self._accept()
        finally:
            self._listener.close()
            os.close(self._wake_r)

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting, give requests in progress ``grace_s`` to end, then cut them."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
            os.close(self._wake_w)
        self._cut(lambda sock: sock not in self._busy)  # idle keep-alive connections
        deadline = time.monotonic() + grace_s
        while self._busy and time.monotonic() < deadline:
            time.sleep(0.01)
        self._cut(lambda sock: True)

    def _cut(self, which: Callable[[socket.socket], bool]) -> None:
        with self._lock:
            for sock in [s for s in self._connections if which(s)]:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        try:
            sock, address = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # e.g. EMFILE: log, and keep serving the others
            log.warning("cannot accept a connection: %s", exc)
            time.sleep(0.05)
            return
        host = str(address[0]) if isinstance(address, tuple) else str(address)
        with self._lock:
            total, mine = len(self._connections), self._per_address.get(host, 0)
            if total >= self._max_connections or mine >= self._max_per_address:
                log.warning("connection from %s refused: %d open, %d from it", host, total, mine)
                sock.close()
                return
            self._connections.add(sock)
            self._per_address[host] = mine + 1
        sock.setblocking(True)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(
            target=self._serve, args=(sock, address, host), name="fedward-uploads-conn", daemon=True
        ).start()

    def _serve(self, sock: socket.socket, address: object, host: str) -> None:
        def busy(now: bool) -> None:
            with self._lock:
                (self._busy.add if now else self._busy.discard)(sock)

        try:
            serve_connection(
                self._handler,
                sock,
                address,
                timeouts=self._timeouts,
                stopping=self._stopping,
                busy=busy,
            )
        except Exception:  # one connection's failure must not reach the others
            log.exception("connection from %s failed", address)
        finally:
            with self._lock:
                self._connections.discard(sock)
                self._busy.discard(sock)
                left = self._per_address.pop(host) - 1
                if left:
                    self._per_address[host] = left
            with contextlib.suppress(OSError):
                sock.close()


def serve_in_thread(server: BlobHttpServer, timeout_s: float = 30.0) -> threading.Thread:
    """Run ``server`` on a daemon thread; returns once it accepts connections."""
    thread = threading.Thread(target=server.serve_forever, name="fedward-uploads", daemon=True)
    thread.start()
    if not server.started.wait(timeout_s):
        raise TransportError("upload server did not start")
    return thread
