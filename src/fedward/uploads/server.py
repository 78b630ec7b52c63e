"""Running the upload server under uvicorn: in a background thread, or as the process.

``UploadServer`` is for tests and the demo (start, use ``.url``, stop); the CLI runs the
same uvicorn configuration in the foreground. Both bind the listening socket
themselves, so port 0 works and the real address is known before the first request.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from fedward.errors import ConfigError, TransportError
from fedward.uploads.app import create_app
from fedward.uploads.asgi import ASGIApp
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


def uvicorn_config(
    app: ASGIApp,
    *,
    log_level: str = "warning",
    access_log: bool = False,
    own_logging: bool = True,
) -> uvicorn.Config:
    """Throughput-minded settings: uvicorn picks httptools and uvloop when installed
    ("auto"), else h11 and asyncio; no access log unless asked; no lifespan (nothing to
    set up); a bounded graceful shutdown so a stuck client cannot hold a restart.

    ``own_logging=False`` leaves the host process's logging alone (uvicorn otherwise
    installs its own handlers), for a server embedded in tests or the demo.
    """
    extra: dict[str, Any] = {} if own_logging else {"log_config": None}
    return uvicorn.Config(
        app,
        http="auto",
        loop="auto",
        lifespan="off",
        log_level=log_level,
        access_log=access_log,
        server_header=False,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
        **extra,
    )


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
    ) -> None:
        """``retention``: delete blobs no longer needed every ``gc_interval_s`` (None: keep
        everything, as tests of the store itself want)."""
        self._app = create_app(Path(data_dir), Path(tokens_file), max_blob_bytes)
        self._collector = (
            BackgroundCollector(self._app.space, retention, gc_interval_s)
            if retention is not None
            else None
        )
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
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
        server = uvicorn.Server(uvicorn_config(self._app, own_logging=False))
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fedward-uploads", daemon=True
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                sock.close()
                raise TransportError(f"upload server did not start on {self._url}")
            time.sleep(0.005)
        # The listener now belongs to uvicorn's event loop, which closes it on stop.
        log.info("upload server listening on %s", self._url)
        if self._collector is not None:
            self._collector.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._collector is not None:
            self._collector.stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._server = self._thread = None

    def __enter__(self) -> UploadServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
