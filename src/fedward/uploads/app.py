"""The upload server's ASGI app: three routes, bearer tokens, streamed bodies.

    GET  /health            {"status": "ok"}, no token needed
    PUT  /blobs/{sha256}    store the body; header ``X-Fedward-Readers: peer1,peer2``
    GET  /blobs/{sha256}    the content, if the caller is one of its readers

There is deliberately no way for a peer to list, replace or delete blobs. A blob that
is missing and a blob the caller may not read both answer 404, so ids reveal nothing.
Uploads are hashed and written as they arrive and refused (413) the moment they pass
the size limit; the temporary file goes at once. Re-uploading stored content only adds
readers, but the body must still hash to the id: knowing an id is not enough to gain
access to its content.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
from pathlib import Path

from fedward.core.ids import ID_PATTERN, SHA256_PATTERN
from fedward.errors import (
    AccessDenied,
    ConfigError,
    FedwardError,
    IntegrityError,
    MessageTooLarge,
    NotFound,
    StorageError,
    ValidationError,
)
from fedward.uploads.asgi import (
    Message,
    Receive,
    Scope,
    Send,
    request_header,
    send_error,
    send_json,
)
from fedward.uploads.blob_space import DiskBlobSpace, IncomingBlob
from fedward.uploads.tokens import TokenRegistry

log = logging.getLogger(__name__)

READERS_HEADER = b"x-fedward-readers"
MAX_READERS = 256
# Big reads keep the number of thread hops per download small (100 per 100 MiB).
DOWNLOAD_CHUNK_BYTES = 1024 * 1024
WRITE_BATCH_BYTES = 1024 * 1024

_BLOBS_PREFIX = "/blobs/"
_DIGITS = re.compile(r"[0-9]{1,20}")
_STATUS_OF_ERROR: tuple[tuple[type[FedwardError], int], ...] = (
    (AccessDenied, 401),
    (NotFound, 404),
    (MessageTooLarge, 413),
    (IntegrityError, 400),
    (ValidationError, 400),
    (StorageError, 503),
)
_BEARER_CHALLENGE = (b"www-authenticate", b'Bearer realm="fedward-uploads"')


class _ClientGoneError(Exception):
    """The client hung up mid-request; there is nobody left to answer."""


class UploadApp:
    def __init__(self, space: DiskBlobSpace, tokens: TokenRegistry, max_blob_bytes: int) -> None:
        if max_blob_bytes < 1:
            raise ConfigError(f"max blob size must be positive, not {max_blob_bytes}")
        self._space = space
        self._tokens = tokens
        self._max_blob_bytes = max_blob_bytes

    @property
    def space(self) -> DiskBlobSpace:
        return self._space

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _answer_lifespan(receive, send)
        elif scope["type"] == "http":
            await self._answer(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._route(scope, receive, send_tracked)
        except _ClientGoneError:
            pass
        except Exception as exc:  # the top of one request: every failure gets an answer
            if started:
                # Too late for an error reply; uvicorn closes the connection mid-body and
                # the client's hash check catches the short read.
                log.exception("failed while sending %s %s", scope["method"], scope["path"])
                return
            status, code, message = _error_reply(exc, scope)
            extra = [_BEARER_CHALLENGE] if status == 401 else []
            await send_error(send, status, code, message, extra)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if path == "/health":
            if method not in ("GET", "HEAD"):
                await _method_not_allowed(send, "GET")
                return
            await send_json(send, 200, {"status": "ok"})
            return
        if not path.startswith(_BLOBS_PREFIX):
            await send_error(send, 404, NotFound.code, "no such endpoint")
            return
        if method not in ("GET", "PUT"):
            await _method_not_allowed(send, "GET, PUT")
            return
        peer_id = self._authenticate(scope)
        blob_id = _blob_id_from(path[len(_BLOBS_PREFIX) :])
        if method == "PUT":
            await self._upload(scope, receive, send, peer_id, blob_id)
        else:
            await self._download(send, peer_id, blob_id)

    def _authenticate(self, scope: Scope) -> str:
        header = request_header(scope, b"authorization")
        if header is None:
            raise AccessDenied("missing bearer token", hint="send 'Authorization: Bearer <token>'")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AccessDenied("the Authorization header must be 'Bearer <token>'")
        peer_id = self._tokens.authenticate(token.strip())
        if peer_id is None:
            raise AccessDenied("unknown or revoked token")
        return peer_id

    async def _upload(
        self, scope: Scope, receive: Receive, send: Send, peer_id: str, blob_id: str
    ) -> None:
        readers = _readers_from(request_header(scope, READERS_HEADER)) | {peer_id}
        declared = _content_length(scope)
        if declared is not None and declared > self._max_blob_bytes:
            raise self._too_large()
        incoming = self._space.begin_upload(keep_content=not self._space.has(blob_id))
        created = incoming.keeps_content
        try:
            await self._receive_into(incoming, receive)
            actual = incoming.blob_id()
            if actual != blob_id:
                raise IntegrityError(
                    f"the content's sha256 is {actual}, not the blob id in the URL",
                    hint="the id must be the lowercase hex sha256 of the exact bytes sent",
                )
            await asyncio.to_thread(self._space.commit, incoming, readers, peer_id)
        finally:
            incoming.discard()
        await send_json(send, 201 if created else 200, {"blob_id": blob_id, "size": incoming.size})

    async def _receive_into(self, incoming: IncomingBlob, receive: Receive) -> None:
        """Pass the body to ``incoming`` as it arrives, stopping at the size limit.

        Hashing and writing run on a worker thread in batches of about 1 MiB while the
        event loop reads the next batch from the socket: the two overlap instead of
        taking turns, and other requests are not held up by the disk.
        """
        received = 0
        batch: list[bytes] = []
        batch_bytes = 0
        writing: asyncio.Future[None] | None = None
        try:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise _ClientGoneError
                body = message.get("body", b"")
                received += len(body)
                if received > self._max_blob_bytes:
                    raise self._too_large()
                if body:
                    batch.append(body)
                    batch_bytes += len(body)
                more = message.get("more_body", False)
                if batch and (batch_bytes >= WRITE_BATCH_BYTES or not more):
                    if writing is not None:
                        await writing
                    writing = asyncio.get_running_loop().run_in_executor(
                        None, incoming.write, b"".join(batch)
                    )
                    batch, batch_bytes = [], 0
                if not more:
                    return
        finally:
            # Never leave a write running into a file the caller is about to discard.
            if writing is not None:
                await asyncio.shield(writing)

    async def _download(self, send: Send, peer_id: str, blob_id: str) -> None:
        handle, size = self._space.open_for(blob_id, peer_id)
        with handle:
            headers = [
                (b"content-type", b"application/octet-stream"),
                (b"content-length", str(size).encode("ascii")),
                (b"etag", f'"{blob_id}"'.encode("ascii")),
                (b"cache-control", b"private, no-store"),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            while True:
                chunk = await asyncio.to_thread(handle.read, DOWNLOAD_CHUNK_BYTES)
                await send({"type": "http.response.body", "body": chunk, "more_body": bool(chunk)})
                if not chunk:
                    break
        # Sent whole: retention counts this reader as served.
        await asyncio.to_thread(self._space.record_fetch, blob_id, peer_id)

    def _too_large(self) -> MessageTooLarge:
        limit_mb = self._max_blob_bytes / (1024 * 1024)
        return MessageTooLarge(
            f"blob larger than this server's limit of {self._max_blob_bytes} bytes "
            f"({limit_mb:g} MiB)",
            hint="raise --max-blob-mb on the upload server",
        )


def create_app(data_dir: Path, tokens_file: Path, max_blob_bytes: int) -> UploadApp:
    """The upload server's ASGI app over ``data_dir``, authenticating with ``tokens_file``."""
    return UploadApp(
        DiskBlobSpace(Path(data_dir)), TokenRegistry(Path(tokens_file)), max_blob_bytes
    )


def _error_reply(exc: Exception, scope: Scope) -> tuple[int, str, str]:
    """Status, code and message for a failure; only our own words reach the peer."""
    if isinstance(exc, ConfigError):
        # Details (with the tokens file path) are in the server log, not in the reply.
        return 503, "unavailable", "the server's token list is unusable"
    if isinstance(exc, FedwardError):
        status = next((s for kind, s in _STATUS_OF_ERROR if isinstance(exc, kind)), 500)
        return status, exc.code, exc.message
    log.exception("failure on %s %s", scope["method"], scope["path"])
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return 507, "storage", "the server is out of space"
    return 500, "internal", "the server failed to answer; its log says why"


def _blob_id_from(text: str) -> str:
    # The message does not echo the id: it may be anything a client sent.
    if not SHA256_PATTERN.fullmatch(text):
        raise ValidationError("a blob id is the 64 lowercase hex digits of its sha256")
    return text


def _readers_from(header: str | None) -> set[str]:
    names = [name.strip() for name in (header or "").split(",") if name.strip()]
    if len(names) > MAX_READERS:
        raise ValidationError(f"at most {MAX_READERS} readers per upload")
    for name in names:
        if not ID_PATTERN.fullmatch(name):
            raise ValidationError(
                "reader ids in X-Fedward-Readers must be 1 to 64 letters, digits, '_' or '-', "
                "separated by commas"
            )
    return set(names)


def _content_length(scope: Scope) -> int | None:
    header = request_header(scope, b"content-length")
    if header is None:
        return None
    # ASCII digits only, with optional spaces or tabs around (RFC 9110's OWS): str.strip
    # and str.isdigit know more whitespace and digits (U+001E, "²") than int() reads.
    value = header.strip(" \t")
    if not _DIGITS.fullmatch(value):
        raise ValidationError("Content-Length must be a non-negative integer")
    return int(value)


async def _method_not_allowed(send: Send, allowed: str) -> None:
    await send_error(
        send, 405, "method_not_allowed", f"allowed: {allowed}", [(b"allow", allowed.encode())]
    )


async def _answer_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
