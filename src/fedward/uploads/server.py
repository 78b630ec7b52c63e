"""Running the upload server: in a background thread, or as the process.

``UploadServer`` is for tests and the demo (start, use ``.url``, stop); the CLI runs the
same ``BlobHttpServer`` in the foreground. Both bind the listening socket themselves, so
port 0 works and the real address is known before the first request.
"""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

from fedward.errors import ConfigError, TransportError
from fedward.uploads.app import create_app
from fedward.uploads.http_connection import DEFAULT_TIMEOUTS, Timeouts
from fedward.uploads.http_server import BlobHttpServer, serve_in_thread
from fedward.uploads.quotas import StorageQuotas
from fedward.uploads.retention import DEFAULT_INTERVAL_S, BackgroundCollector, RetentionPolicy

log = logging.getLogger(__name__)

DEFAULT_MAX_BLOB_BYTES = 1024 * 1024 * 1024


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0 picks a free one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def listener_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class UploadServer:
    """The upload server on a background thread, for tests and the single-machine demo."""

    def __init__(
        self,
        data_dir: Path,
        tokens_file: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES,
        retention: RetentionPolicy | None = None,
        gc_interval_s: float = DEFAULT_INTERVAL_S,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        quotas: StorageQuotas | None = None,
    ) -> None:
        """``retention``: delete blobs no longer needed every ``gc_interval_s`` (None: keep
        everything, as tests of the store itself want). ``quotas``: None for the
        defaults (``uploads.quotas``)."""
        self._app = create_app(Path(data_dir), Path(tokens_file), max_blob_bytes, quotas)
        self._collector = (
            BackgroundCollector(self._app.space, retention, gc_interval_s)
            if retention is not None
            else None
        )
        self._host = host
        self._timeouts = timeouts
        self._port = port
        self._server: BlobHttpServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise TransportError("upload server not started", hint="call start() first")
        return self._url

    def start(self, timeout_s: float = 30.0) -> UploadServer:
        """Start listening; returns once the server accepts requests."""
        if self._thread is not None:
            raise TransportError("upload server already started")
        sock = bind_listener(self._host, self._port)
        self._url = listener_url(sock)
        self._server = BlobHttpServer(self._app, sock, timeouts=self._timeouts)
        try:
            self._thread = serve_in_thread(self._server, timeout_s)
        except TransportError:
            self.stop()
            sock.close()
            raise
        # The listener now belongs to the server's thread, which closes it on stop.
        log.info("upload server listening on %s", self._url)
        if self._collector is not None:
            self._collector.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._collector is not None:
            self._collector.stop()
        if self._server is not None:
            self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._server = self._thread = None

    def __enter__(self) -> UploadServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
