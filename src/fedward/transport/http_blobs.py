"""``HttpBlobStore``: the ``BlobStore`` of the upload server, over HTTP.

Every failure is translated here, once: 401 becomes AccessDenied, 404 NotFound, 413
ValidationError (with the server's limit), 507 for a quota QuotaExceeded (naming the
server's setting; not tried again: it would be refused again until blobs are deleted),
a body that does not hash to its id IntegrityError, an unreachable server
TransportError. A request the server could not
complete (connection lost, refused, timed out, a 5xx answer such as a full disk) is
tried again, from the first byte, with a growing pause, for up to ``retry_s``: uploads
and downloads are idempotent (a blob is its hash), a download is checked against its
hash whatever attempt it came from, and a failed attempt leaves no file behind.

Bodies move with as few passes as the checks allow (``http_pool``): an upload from a
file is one ``sendfile`` after a hashing read (none when the caller already knows the
hash), a download is read into one reused buffer, hashed and written from it. A
download with ``max_bytes`` is refused on the server's Content-Length when it gives one,
and otherwise the moment more than that arrived: the connection is dropped rather than
drained, so a hostile or broken server cannot make the client read (or hold) more.

A download streamed from an upload in progress (the server says so) carries the
uploader's claimed length, not a checked one: anyone may start an upload of an id, so a
claim past ``max_bytes`` there is a lost connection (tried again; the real content may
be stored by then), not a refusal. Each attempt's body must arrive within the client's
``timeout_s`` plus its size at ``min_rate_bytes_s``: a server (or an upload it streams)
that drips a byte every few seconds resets a socket timeout forever, but not this.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO, NoReturn, TypeVar

from fedward.core.ids import validate_id, validate_sha256
from fedward.errors import (
    AccessDenied,
    FedwardError,
    IntegrityError,
    NotFound,
    QuotaExceeded,
    RequestTimeout,
    StorageError,
    TransportError,
    ValidationError,
)
from fedward.storage.atomic import atomic_writer
from fedward.transport.blobs import blob_too_large, check_max_bytes, file_sha256
from fedward.transport.http_pool import HttpConnections, Lease
from fedward.transport.kept_confirmations import KeptConfirmations

CHUNK_BYTES = 1024 * 1024
# How long ``close`` waits for the confirmations still queued (``KeptConfirmations``).
CLOSE_WAIT_S = 2.0
DEFAULT_RETRY_S = 60.0
# The slowest body an attempt waits for (after ``timeout_s``): 1 GiB in 4.5 hours.
DEFAULT_MIN_RATE_BYTES_S = 64 * 1024
# The upload server's mark on a GET answered from an upload in progress (``uploads.app``).
_STREAMING_HEADER = ("X-Fedward-Upload", "in-progress")
MAX_ERROR_BODY_BYTES = 64 * 1024
_MAX_INTERIM_BYTES = 4096
_FIRST_PAUSE_S, _MAX_PAUSE_S = 0.2, 3.0
_URL_HINT = "check UPLOADS_URL and that the upload server is running"
# A reused keep-alive connection that the server closed meanwhile fails with one of
# these before any answer: the request is sent again at once on a new connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

log = logging.getLogger(__name__)
T = TypeVar("T")
Sink = Callable[[memoryview], object]


class HttpBlobStore:
    def __init__(
        self,
        base_url: str,
        token: str,
        timeout_s: float = 60,
        retry_s: float = DEFAULT_RETRY_S,
        min_rate_bytes_s: float = DEFAULT_MIN_RATE_BYTES_S,
    ) -> None:
        """``retry_s``: how long a request the server could not complete is tried again
        (0: once only). ``min_rate_bytes_s``: a download attempt slower than this (after
        ``timeout_s``) is given up, and tried again."""
        if min_rate_bytes_s <= 0:
            raise ValidationError(f"min_rate_bytes_s must be positive, not {min_rate_bytes_s}")
        self.retry_s = retry_s
        self._timeout_s = timeout_s
        self._min_rate_bytes_s = min_rate_bytes_s
        base_url = base_url.rstrip("/")
        self.base_url = base_url
        self._pool = HttpConnections(base_url, timeout_s)
        self._confirmations = KeptConfirmations(self._send_kept)
        self._auth = f"Bearer {token}"

    def __repr__(self) -> str:  # never show the token
        return f"HttpBlobStore({self.base_url!r})"

    def put_bytes(self, data: bytes, readers: Sequence[str]) -> str:
        view = memoryview(data).cast("B")
        blob_id = hashlib.sha256(view).hexdigest()
        self._retried(lambda: self._put(blob_id, view, len(view), readers))
        return blob_id

    def put_file(
        self,
        path: Path,
        readers: Sequence[str],
        *,
        blob_id: str | None = None,
        on_accepted: Callable[[], object] | None = None,
    ) -> str:
        """Stream the file from disk (memory stays O(1)). ``blob_id``: its sha256 when the
        caller computed it already (the server checks it all the same). ``on_accepted``:
        called (on this thread, before the body is sent, again on each retry) once the
        server has accepted the request and registered the upload, from when on its
        readers' GETs stream it as it arrives (``uploads.upload_streams``); over TLS,
        once the upload is stored."""
        path = Path(path)
        if blob_id is None:
            blob_id = file_sha256(path)
        else:
            validate_sha256(blob_id)
        size = path.stat().st_size
        known: str = blob_id
        early = on_accepted if not self._pool.tls else None
        self._retried(lambda: self._put(known, path, size, readers, early))
        if on_accepted is not None and early is None:
            on_accepted()
        return blob_id

    def get_bytes(self, blob_id: str, *, max_bytes: int | None = None) -> bytes:
        def attempt() -> bytes:
            parts: list[bytes] = []
            self._download(blob_id, lambda chunk: parts.append(bytes(chunk)), max_bytes)
            return b"".join(parts)

        return self._retried(attempt, streamed=True)

    def get_file(
        self, blob_id: str, dest: Path, *, max_bytes: int | None = None, durable: bool = True
    ) -> Path:
        """Stream the blob into a temporary file beside ``dest`` while hashing it, then
        rename it over ``dest`` and ``confirm_kept`` it. On any failure nothing is left
        behind. ``durable=False`` for scratch files deleted soon after and never read
        after a restart: no fsync."""
        dest = Path(dest)
        check_max_bytes(max_bytes)

        def attempt() -> Path:
            try:
                with atomic_writer(dest, mode=0o600, durable=durable) as out:
                    self._download(blob_id, out.write, max_bytes, confirms=True)
            except TransportError:  # (a ConnectionError, hence an OSError too)
                raise
            except OSError as exc:  # our disk, not the server: no use trying again
                raise StorageError(
                    f"cannot save blob {blob_id}: {exc.strerror or exc}",
                    hint="free space where this peer keeps its files"
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                    else None,
                ) from exc
            return dest

        kept = self._retried(attempt, streamed=True)
        self.confirm_kept(blob_id)
        return kept

    def offer_again(self, blob_id: str) -> bool:
        """Announce a blob this peer uploaded again, without sending it: its readers must
        fetch it anew (``uploads.app``). False if the server no longer holds it."""
        validate_sha256(blob_id)

        def attempt() -> bool:
            status, body = self._post(blob_id, "offer")
            if status == 404:
                return False
            if status != 405:  # 405: a server older than offers, which deletes later
                _raise_for_status(status, body, blob_id)
            return True

        return self._retried(attempt)

    def confirm_kept(self, blob_id: str) -> None:
        """Tell the server this peer holds ``blob_id`` in a file of its own, from when on
        it counts as fetched (``uploads.app``); sent on a thread of its own
        (``KeptConfirmations``)."""
        validate_sha256(blob_id)
        self._confirmations.send(blob_id)

    def _send_kept(self, blob_id: str) -> None:
        """Bookkeeping only, tried once: when it is lost the server keeps the blob until
        it has been idle for its retention time."""
        try:
            status, body = self._post(blob_id, "kept")
            # 405: a server older than confirmations, which counted the GET itself.
            if status != 405:
                _raise_for_status(status, body, blob_id)
        except FedwardError as exc:
            log.info("could not confirm blob %s as kept: %s", blob_id, exc)

    def _post(self, blob_id: str, action: str) -> tuple[int, bytes]:
        """``POST /blobs/<blob_id>/<action>`` without a body: the status and answer."""

        def send(lease: Lease) -> http.client.HTTPResponse:
            headers = {"Authorization": self._auth, "Content-Length": "0"}
            _send_head(lease, "POST", f"/blobs/{blob_id}/{action}", headers)
            return lease.conn.getresponse()

        with self._translated(), self._answer(send) as (response, lease):
            body = _read_small(response)
            lease.reusable = not response.will_close
            return response.status, body

    def _retried(self, attempt: Callable[[], T], *, streamed: bool = False) -> T:
        """``attempt()``, again after a pause while it fails with TransportError (the
        server unreachable, gone mid-request, or answering 5xx) and ``retry_s`` lasts.
        ``streamed``: a download, which may have been streaming an upload in progress;
        once one attempt was cut, NotFound is tried again too: the upload failed, and its
        uploader (retrying, or resumed after a crash) may be sending it again."""
        deadline = time.monotonic() + self.retry_s
        pause = _FIRST_PAUSE_S
        cut = False
        while True:
            try:
                return attempt()
            except (TransportError, NotFound) as exc:
                if isinstance(exc, NotFound) and not cut:
                    raise
                cut = cut or streamed
                if time.monotonic() + pause > deadline:
                    raise
                log.info("upload server request failed (%s); trying again in %.1f s", exc, pause)
            time.sleep(pause)
            pause = min(2 * pause, _MAX_PAUSE_S)

    def close(self) -> None:
        self._confirmations.close(CLOSE_WAIT_S)
        self._pool.close()

    def __enter__(self) -> HttpBlobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _put(
        self,
        blob_id: str,
        content: memoryview | Path,
        size: int,
        readers: Sequence[str],
        on_accepted: Callable[[], object] | None = None,
    ) -> None:
        for reader in readers:
            validate_id(reader, kind="reader id")
        headers = {
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
            "X-Fedward-Readers": ",".join(readers),
        }
        if on_accepted is not None:
            headers["Expect"] = "100-continue"

        def send(lease: Lease) -> http.client.HTTPResponse:
            _send_head(lease, "PUT", f"/blobs/{blob_id}", {**headers, "Authorization": self._auth})
            if on_accepted is not None:
                if not _continued(lease):  # refused on its head: the answer says why
                    return lease.conn.getresponse()
                on_accepted()
            try:
                if isinstance(content, Path):
                    with open(content, "rb") as handle:
                        _send_file(lease, handle, size)
                else:
                    lease.conn.sock.sendall(content)
            except OSError:
                # The server may have answered (413, 401) and closed before reading it
                # all: its answer says why; without one, this was a lost connection.
                with contextlib.suppress(OSError, http.client.HTTPException):
                    return lease.conn.getresponse()
                raise
            return lease.conn.getresponse()

        with self._translated(), self._answer(send) as (response, lease):
            body = _read_small(response)
            lease.reusable = not response.will_close
            _raise_for_status(response.status, body, blob_id)
        try:
            stored = json.loads(body).get("blob_id")
        except (ValueError, AttributeError) as exc:
            raise TransportError(
                f"upload server gave an unreadable answer for blob {blob_id}", hint=_URL_HINT
            ) from exc
        if stored != blob_id:
            raise IntegrityError(f"upload server stored {stored!r} instead of blob {blob_id}")

    def _download(
        self, blob_id: str, sink: Sink, max_bytes: int | None = None, *, confirms: bool = False
    ) -> None:
        """Feed the blob's bytes to ``sink`` as they arrive (memoryviews of one buffer,
        valid only during the call); IntegrityError if they do not hash to ``blob_id``,
        ValidationError past ``max_bytes`` (the caller then drops what it got).
        ``confirms``: the caller will ``confirm_kept`` it, the body's end is no fetch."""
        validate_sha256(blob_id)
        check_max_bytes(max_bytes)
        headers = {"Authorization": self._auth}
        if confirms:
            headers["X-Fedward-Confirms"] = "kept"

        def send(lease: Lease) -> http.client.HTTPResponse:
            _send_head(lease, "GET", f"/blobs/{blob_id}", headers)
            return lease.conn.getresponse()

        digest = hashlib.sha256()
        # Leaving before the body's end closes the connection instead of reading the
        # rest: that is what bounds a refused download.
        with self._translated(), self._answer(send) as (response, lease):
            if response.status >= 300:
                _raise_for_status(response.status, _read_small(response), blob_id)
            if max_bytes is not None and (response.length or 0) > max_bytes:
                if response.getheader(_STREAMING_HEADER[0]) == _STREAMING_HEADER[1]:
                    raise TransportError(
                        f"an upload of blob {blob_id} in progress claims {response.length} "
                        f"bytes, more than the {max_bytes} expected; trying again"
                    )
                raise blob_too_large(blob_id, max_bytes)
            size = response.length if response.length is not None else max_bytes
            limit_s = None if size is None else self._timeout_s + size / self._min_rate_bytes_s
            with _BodyDeadline(lease.conn.sock, limit_s) as deadline:
                try:
                    _read_body(response, digest, sink, blob_id, max_bytes)
                except (TransportError, OSError, http.client.HTTPException) as exc:
                    if deadline.expired:
                        raise deadline.error(blob_id, self.base_url) from exc
                    raise
            lease.reusable = not (response.will_close or deadline.expired)
        _check_digest(blob_id, digest.hexdigest())

    @contextlib.contextmanager
    def _answer(
        self, send: Callable[[Lease], http.client.HTTPResponse]
    ) -> Iterator[tuple[http.client.HTTPResponse, Lease]]:
        """The answer to the request ``send`` makes; a reused connection found closed by
        the server is replaced by a new one once."""
        for attempt in (1, 2):
            with self._pool.connection() as lease:
                try:
                    response = send(lease)
                except _STALE:
                    if not lease.reused or attempt == 2:
                        raise
                    self._pool.close()
                    continue
                yield response, lease
                return

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except FedwardError:  # ours already (AccessDenied is an OSError too)
            raise
        except TimeoutError as exc:
            raise RequestTimeout(
                f"upload server at {self.base_url} did not answer in time", hint=_URL_HINT
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise TransportError(
                f"cannot talk to the upload server at {self.base_url}: {exc}", hint=_URL_HINT
            ) from exc


class _BodyDeadline:
    """Ends a body that takes longer than ``limit_s`` (None: no limit) by shutting its
    socket down from a timer thread: that wakes the read blocked on it, which a socket
    timeout alone cannot do against a byte every few seconds."""

    def __init__(self, sock: socket.socket, limit_s: float | None) -> None:
        self._sock = sock
        self.limit_s = limit_s
        self.expired = False
        self._lock = threading.Lock()
        self._done = False
        self._timer = None if limit_s is None else threading.Timer(limit_s, self._expire)

    def __enter__(self) -> _BodyDeadline:
        if self._timer is not None:
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:  # no shutdown once the connection may be back in the pool
            self._done = True
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            # socket.socket's own: an SSLSocket's would drop its TLS state under the reader.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def error(self, blob_id: str, base_url: str) -> RequestTimeout:
        return RequestTimeout(
            f"blob {blob_id} from the upload server at {base_url} did not arrive within "
            f"{self.limit_s:.0f} s",
            hint="the upload server, or the upload it streams, sends too slowly",
        )


def _send_head(lease: Lease, method: str, path: str, headers: dict[str, str]) -> None:
    conn = lease.conn
    conn.putrequest(method, path, skip_accept_encoding=True)
    conn.putheader("Accept-Encoding", "identity")
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()


def _continued(lease: Lease) -> bool:
    """Whether the server answered a request head with ``100 Continue`` (read here), not
    with its final answer (left unread, for ``http.client``). Peeked at, not read: only
    a plain socket, not TLS, can do that (``put_file`` asks for it only then)."""
    sock = lease.conn.sock
    while True:
        seen = sock.recv(_MAX_INTERIM_BYTES, socket.MSG_PEEK)
        end = seen.find(b"\r\n\r\n")
        if end >= 0:
            break
        if not seen or len(seen) >= _MAX_INTERIM_BYTES:
            return False  # closed, or no interim answer: http.client reads what it is
        time.sleep(0.001)  # a head split across packets: its end is on its way
    if not seen.startswith(b"HTTP/1.1 100 "):
        return False
    wanted = end + 4
    while wanted:  # consume the interim answer, and nothing after it
        got = sock.recv(wanted)
        if not got:
            raise TransportError("the upload server closed the connection after 100 Continue")
        wanted -= len(got)
    return True


def _send_file(lease: Lease, handle: BinaryIO, size: int) -> None:
    sock = lease.conn.sock
    sent = sock.sendfile(handle, 0, size)
    if sent != size:
        raise TransportError(f"the file changed while it was sent ({sent} of {size} bytes)")


def _read_body(
    response: http.client.HTTPResponse,
    digest: hashlib._Hash,
    sink: Sink,
    blob_id: str,
    max_bytes: int | None,
) -> None:
    buffer = memoryview(bytearray(CHUNK_BYTES))
    announced = response.length  # None for a chunked answer (http.client checks those)
    received = 0
    while got := response.readinto(buffer):
        received += got
        if max_bytes is not None and received > max_bytes:
            raise blob_too_large(blob_id, max_bytes)
        chunk = buffer[:got]
        digest.update(chunk)
        sink(chunk)
    # http.client's readinto ends quietly when the connection drops inside a body with a
    # Content-Length: a cut transfer is a lost connection (tried again), not bad content.
    if announced is not None and received < announced:
        raise TransportError(
            f"the upload server's connection ended after {received} of {announced} bytes "
            f"of blob {blob_id}",
            hint=_URL_HINT,
        )


def _read_small(response: http.client.HTTPResponse) -> bytes:
    """An answer's body that must be small (JSON); a longer one is cut, and the
    connection not reused."""
    return response.read(MAX_ERROR_BODY_BYTES)


def _check_digest(blob_id: str, actual: str) -> None:
    if actual != blob_id:
        raise IntegrityError(
            f"downloaded content of blob {blob_id} hashes to {actual}",
            hint="the upload server or the network altered it; nothing was kept",
        )


def _raise_for_status(status: int, body: bytes, blob_id: str) -> None:
    if status < 300:
        return
    try:
        answer = json.loads(body)
        code, message = str(answer.get("error", "")), str(answer.get("message", ""))
    except (ValueError, AttributeError):
        code, message = "", body[:200].decode("utf-8", "replace")
    _raise_error(status, code, message, blob_id)


def _raise_error(status: int, code: str, message: str, blob_id: str) -> NoReturn:
    if status == 401:
        raise AccessDenied(
            f"upload server refused this peer's token: {message}",
            hint="check the uploads token file (FEDWARD_UPLOADS_TOKEN_FILE) for this peer",
        )
    if status == 404:
        raise NotFound(f"blob {blob_id} not found, or this peer is not one of its readers")
    if status == 413:
        raise ValidationError(f"upload server refused blob {blob_id}: {message}")
    if status == 507 and code == QuotaExceeded.code:
        # A 507 without it is a full disk: a 5xx like others, tried again.
        raise QuotaExceeded(f"upload server refused blob {blob_id}: {message}")
    if code == "integrity":
        raise IntegrityError(f"upload server refused blob {blob_id}: {message}")
    if status == 400:
        raise ValidationError(f"upload server refused the request: {message}")
    raise TransportError(
        f"upload server answered HTTP {status} for blob {blob_id}: {message or code}",
        hint=_URL_HINT if status >= 500 else None,
    )
