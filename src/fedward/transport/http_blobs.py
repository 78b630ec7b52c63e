"""``HttpBlobStore``: the ``BlobStore`` of the upload server, over HTTP (the only httpx import).

Every httpx error is translated here, once: 401 becomes AccessDenied, 404 NotFound,
413 ValidationError (with the server's limit), a body that does not hash to its id
IntegrityError, an unreachable server TransportError. A request the server could not
complete (connection lost, refused, timed out, a 5xx answer such as a full disk) is
tried again, from the first byte, with a growing pause, for up to ``retry_s``: uploads
and downloads are idempotent (a blob is its hash), a download is checked against its
hash whatever attempt it came from, and a failed attempt leaves no file behind. Bodies
are streamed both ways in
1 MiB chunks over one keep-alive connection, and downloads are hashed as they arrive.
A download with ``max_bytes`` is refused on the server's Content-Length when it gives
one, and otherwise the moment more than that arrived: the connection is dropped rather
than drained, so a hostile or broken server cannot make the client read (or hold) more.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn, TypeVar

import httpx

from fedward.core.ids import validate_id, validate_sha256
from fedward.errors import (
    AccessDenied,
    IntegrityError,
    NotFound,
    RequestTimeout,
    StorageError,
    TransportError,
    ValidationError,
)
from fedward.storage.atomic import atomic_writer
from fedward.transport.blobs import blob_too_large, check_max_bytes

CHUNK_BYTES = 1024 * 1024
DEFAULT_RETRY_S = 60.0
_FIRST_PAUSE_S, _MAX_PAUSE_S = 0.2, 3.0
_URL_HINT = "check UPLOADS_URL and that the upload server is running"

log = logging.getLogger(__name__)
T = TypeVar("T")


class HttpBlobStore:
    def __init__(
        self, base_url: str, token: str, timeout_s: float = 60, retry_s: float = DEFAULT_RETRY_S
    ) -> None:
        """``retry_s``: how long a request the server could not complete is tried again
        (0: once only)."""
        self.retry_s = retry_s
        base_url = base_url.rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ValidationError(
                f"upload server URL must start with http:// or https://: {base_url!r}"
            )
        self.base_url = base_url
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Accept-Encoding": "identity"},
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment must not see VPN traffic or tokens
        )

    def __repr__(self) -> str:  # never show the token
        return f"HttpBlobStore({self.base_url!r})"

    def put_bytes(self, data: bytes, readers: Sequence[str]) -> str:
        blob_id = hashlib.sha256(data).hexdigest()
        data = bytes(data)
        self._retried(lambda: self._put(blob_id, _memory_chunks(data), len(data), readers))
        return blob_id

    def put_file(self, path: Path, readers: Sequence[str]) -> str:
        """Hash the file, then stream it from disk: memory stays O(chunk)."""
        path = Path(path)
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
            size = os.fstat(handle.fileno()).st_size
        blob_id = digest.hexdigest()
        self._retried(lambda: self._put(blob_id, _file_chunks(path), size, readers))
        return blob_id

    def get_bytes(self, blob_id: str, *, max_bytes: int | None = None) -> bytes:
        def attempt() -> bytes:
            parts: list[bytes] = []
            self._download(blob_id, parts.append, max_bytes)
            return b"".join(parts)

        return self._retried(attempt)

    def get_file(self, blob_id: str, dest: Path, *, max_bytes: int | None = None) -> Path:
        """Stream the blob into a temporary file beside ``dest`` while hashing it, then
        rename it over ``dest``. On any failure nothing is left behind."""
        dest = Path(dest)
        check_max_bytes(max_bytes)

        def attempt() -> Path:
            try:
                with atomic_writer(dest, mode=0o600) as out:
                    self._download(blob_id, out.write, max_bytes)
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

        return self._retried(attempt)

    def _retried(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, again after a pause while it fails with TransportError (the
        server unreachable, gone mid-request, or answering 5xx) and ``retry_s`` lasts."""
        deadline = time.monotonic() + self.retry_s
        pause = _FIRST_PAUSE_S
        while True:
            try:
                return attempt()
            except TransportError as exc:
                if time.monotonic() + pause > deadline:
                    raise
                log.info("upload server request failed (%s); trying again in %.1f s", exc, pause)
            time.sleep(pause)
            pause = min(2 * pause, _MAX_PAUSE_S)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpBlobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _put(
        self, blob_id: str, content: bytes | Iterator[bytes], size: int, readers: Sequence[str]
    ) -> None:
        for reader in readers:
            validate_id(reader, kind="reader id")
        headers = {
            "Content-Length": str(size),  # also keeps httpx from chunking a streamed body
            "Content-Type": "application/octet-stream",
            "X-Fedward-Readers": ",".join(readers),
        }
        with self._translated():
            response = self._client.put(f"/blobs/{blob_id}", content=content, headers=headers)
        _raise_for_status(response, blob_id)
        try:
            stored = response.json().get("blob_id")
        except (ValueError, AttributeError) as exc:
            raise TransportError(
                f"upload server gave an unreadable answer for blob {blob_id}", hint=_URL_HINT
            ) from exc
        if stored != blob_id:
            raise IntegrityError(f"upload server stored {stored!r} instead of blob {blob_id}")

    def _download(
        self, blob_id: str, sink: Callable[[bytes], object], max_bytes: int | None = None
    ) -> None:
        """Feed the blob's bytes to ``sink`` as they arrive; IntegrityError if they do not
        hash to ``blob_id``, ValidationError past ``max_bytes`` (the caller then drops what
        it got)."""
        validate_sha256(blob_id)
        check_max_bytes(max_bytes)
        digest = hashlib.sha256()
        received = 0
        # Leaving the stream before the body's end closes the connection instead of
        # reading the rest: that is what bounds a refused download.
        with self._translated(), self._client.stream("GET", f"/blobs/{blob_id}") as response:
            _raise_for_status(response, blob_id)
            if max_bytes is not None and _declared_length(response) > max_bytes:
                raise blob_too_large(blob_id, max_bytes)
            # Raw chunks skip httpx's decoding layer; we asked for identity encoding.
            encoded = response.headers.get("content-encoding", "identity") != "identity"
            for chunk in response.iter_bytes() if encoded else response.iter_raw():
                received += len(chunk)
                if max_bytes is not None and received > max_bytes:
                    raise blob_too_large(blob_id, max_bytes)
                digest.update(chunk)
                sink(chunk)
        _check_digest(blob_id, digest.hexdigest())

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except httpx.TimeoutException as exc:
            raise RequestTimeout(
                f"upload server at {self.base_url} did not answer in time", hint=_URL_HINT
            ) from exc
        except httpx.HTTPError as exc:
            raise TransportError(
                f"cannot talk to the upload server at {self.base_url}: {exc}", hint=_URL_HINT
            ) from exc


def _memory_chunks(data: bytes) -> Iterator[bytes]:
    # httpcore re-slices the unsent rest of a buffer after every send(), which is
    # quadratic for one large body; 1 MiB pieces keep it linear.
    view = memoryview(data)
    for start in range(0, len(data), CHUNK_BYTES):
        yield bytes(view[start : start + CHUNK_BYTES])


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def _declared_length(response: httpx.Response) -> int:
    """The Content-Length the server announced; 0 when it gave none (or gibberish, which
    the streamed count then judges)."""
    try:
        return int(response.headers.get("content-length", "0"))
    except ValueError:
        return 0


def _check_digest(blob_id: str, actual: str) -> None:
    if actual != blob_id:
        raise IntegrityError(
            f"downloaded content of blob {blob_id} hashes to {actual}",
            hint="the upload server or the network altered it; nothing was kept",
        )


def _raise_for_status(response: httpx.Response, blob_id: str) -> None:
    status = response.status_code
    if status < 300:
        return
    response.read()
    try:
        body = response.json()
        code, message = str(body.get("error", "")), str(body.get("message", ""))
    except ValueError:
        code, message = "", response.text[:200]
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
    if code == "integrity":
        raise IntegrityError(f"upload server refused blob {blob_id}: {message}")
    if status == 400:
        raise ValidationError(f"upload server refused the request: {message}")
    raise TransportError(
        f"upload server answered HTTP {status} for blob {blob_id}: {message or code}",
        hint=_URL_HINT if status >= 500 else None,
    )
