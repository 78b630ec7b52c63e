"""The upload server's routes: five of them, bearer tokens, streamed bodies.

    GET  /health                 {"status": "ok"}, no token needed
    PUT  /blobs/{sha256}         store the body; header ``X-Fedward-Readers: peer1,peer2``
    GET  /blobs/{sha256}         the content, if the caller is one of its readers
    POST /blobs/{sha256}/kept    the caller (a reader) has kept the content: it is served
    POST /blobs/{sha256}/offer   the caller (its uploader) offers it again: a new use

There is deliberately no way for a peer to list, replace or delete blobs. A blob that
is missing and a blob the caller may not read both answer 404, so ids reveal nothing.
Uploads are hashed and written as they arrive and refused (413) the moment they pass
the size limit; the temporary file goes at once. An upload whose declared length would
take its uploader's stored bytes, or the server's, past a quota is refused (507) before
a byte is read (``quotas``). Re-uploading stored content only adds
readers, but the body must still hash to the id: knowing an id is not enough to gain
access to its content.

A GET of a blob whose upload is still in progress is answered from that upload as its
bytes arrive, if the caller is one of the readers it declares (``upload_streams``: the
last byte only once the content is verified, a cut connection otherwise). An upload that
sends ``Expect: 100-continue`` hears ``100 Continue`` once it is registered, so it can
tell its readers to start before its body is sent.

When a reader has fetched a blob is what ``retention`` deletes on, and the end of a
response body is not it: a reader killed after its last byte arrived but before it
kept the file would need the content again. A GET that sends ``X-Fedward-Confirms:
kept`` is therefore not counted when its body ends; its reader confirms with ``POST
.../kept`` once the file is in place. (A GET without it is counted at its end.) An
uploader that announces a blob again without sending it (a node answering a repeated
request from a job it kept) ``POST .../offer``s it: its readers must fetch it anew, as
after a new upload of the same content; 404 if it is gone.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from fedward.core.ids import ID_PATTERN, SHA256_PATTERN
from fedward.errors import (
    AccessDenied,
    ConfigError,
    FedwardError,
    IntegrityError,
    MessageTooLarge,
    NotFound,
    QuotaExceeded,
    StorageError,
    ValidationError,
)
from fedward.uploads.blob_space import DiskBlobSpace
from fedward.uploads.http_connection import ClientGone, Exchange
from fedward.uploads.http_wire import BadRequest, RequestHead, error_body
from fedward.uploads.incoming_blob import IncomingBlob
from fedward.uploads.quotas import StorageQuotas
from fedward.uploads.tokens import TokenRegistry
from fedward.uploads.upload_streams import StreamCut, UploadStream, UploadStreams

log = logging.getLogger(__name__)

READERS_HEADER = "x-fedward-readers"
CONFIRMS_HEADER = "x-fedward-confirms"
# On a GET answered from an upload in progress: its Content-Length is the uploader's
# claim, not yet checked (``transport.http_blobs`` tries such an answer again rather than
# take an oversized claim for the blob's real size).
STREAMING_HEADER = ("x-fedward-upload", "in-progress")
MAX_READERS = 256

_BLOBS_PREFIX = "/blobs/"
_ACTIONS = ("kept", "offer")  # POST /blobs/{sha256}/<action>
_STATUS_OF_ERROR: tuple[tuple[type[FedwardError], int], ...] = (
    (AccessDenied, 401),
    (NotFound, 404),
    (MessageTooLarge, 413),
    (IntegrityError, 400),
    (ValidationError, 400),
    (QuotaExceeded, 507),  # before StorageError, which it is: not a passing failure
    (StorageError, 503),
)
_BEARER_CHALLENGE = ("www-authenticate", 'Bearer realm="fedward-uploads"')


class UploadApp:
    """The routes, over a blob space and a token registry; ``handle`` answers one request
    on its ``Exchange`` (``http_server``)."""

    def __init__(self, space: DiskBlobSpace, tokens: TokenRegistry, max_blob_bytes: int) -> None:
        if max_blob_bytes < 1:
            raise ConfigError(f"max blob size must be positive, not {max_blob_bytes}")
        self._space = space
        self._tokens = tokens
        self._max_blob_bytes = max_blob_bytes
        self._streams = UploadStreams()

    @property
    def space(self) -> DiskBlobSpace:
        return self._space

    def handle(self, request: RequestHead, exchange: Exchange) -> None:
        try:
            self._route(request, exchange)
        except ClientGone:
            exchange.reusable = False
        except Exception as exc:  # the top of one request: every failure gets an answer
            if exchange.started:
                # Too late for an error reply: the connection ends mid-body and the
                # client's hash check catches the short read.
                log.exception("failed while sending %s %s", request.method, request.path)
                exchange.reusable = False
                return
            status, code, message = _error_reply(exc, request)
            extra = [_BEARER_CHALLENGE] if status == 401 else []
            if isinstance(exc, BadRequest):
                exchange.reusable = False
            send_error(exchange, status, code, message, extra)

    def _route(self, request: RequestHead, exchange: Exchange) -> None:
        path, method = request.path, request.method
        if path == "/health":
            if method not in ("GET", "HEAD"):
                _method_not_allowed(exchange, "GET")
                return
            send_json(exchange, 200, {"status": "ok"})
            return
        if not path.startswith(_BLOBS_PREFIX):
            send_error(exchange, 404, NotFound.code, "no such endpoint")
            return
        target, _, action = path[len(_BLOBS_PREFIX) :].rpartition("/")
        if action in _ACTIONS:
            if method != "POST":
                _method_not_allowed(exchange, "POST")
                return
            peer_id = self._authenticate(request)
            blob_id = _blob_id_from(target)
            if action == "kept":
                self._confirm_kept(exchange, peer_id, blob_id)
            else:
                self._offer_again(exchange, peer_id, blob_id)
            return
        if method not in ("GET", "PUT"):
            _method_not_allowed(exchange, "GET, PUT")
            return
        peer_id = self._authenticate(request)
        blob_id = _blob_id_from(path[len(_BLOBS_PREFIX) :])
        if method == "PUT":
            self._upload(request, exchange, peer_id, blob_id)
        else:
            confirms = (request.header(CONFIRMS_HEADER) or "").strip().lower() == "kept"
            self._download(exchange, peer_id, blob_id, counted=not confirms)

    def _authenticate(self, request: RequestHead) -> str:
        header = request.header("authorization")
        if header is None:
            raise AccessDenied("missing bearer token", hint="send 'Authorization: Bearer <token>'")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AccessDenied("the Authorization header must be 'Bearer <token>'")
        peer_id = self._tokens.authenticate(token.strip())
        if peer_id is None:
            raise AccessDenied("unknown or revoked token")
        return peer_id

    def _upload(self, request: RequestHead, exchange: Exchange, peer_id: str, blob_id: str) -> None:
        readers = _readers_from(request.header(READERS_HEADER)) | {peer_id}
        declared = request.content_length
        if declared is None:
            raise BadRequest("an upload needs a Content-Length", status=411)
        if declared > self._max_blob_bytes:
            raise self._too_large()
        # Refused here (QuotaExceeded, 507) before a byte is read or kept.
        incoming = self._space.begin_upload_of(blob_id, peer_id, declared_bytes=declared)
        created = incoming.keeps_content
        stream: UploadStream | None = None
        stored = False
        try:
            stream = self._streamable(incoming, blob_id, declared, frozenset(readers), peer_id)
            exchange.send_continue()  # registered: its readers may GET it from now on
            if stream is None:
                exchange.read_body(incoming.write)
            else:

                def sink(chunk: memoryview) -> None:
                    incoming.write(chunk)
                    incoming.flush()
                    stream.wrote(incoming.size)

                exchange.read_body(sink)
            actual = incoming.blob_id()
            if actual != blob_id:
                raise IntegrityError(
                    f"the content's sha256 is {actual}, not the blob id in the URL",
                    hint="the id must be the lowercase hex sha256 of the exact bytes sent",
                )
            if stream is not None:  # its readers may finish while the content is stored
                stream.verified()
            self._space.commit(incoming, readers, peer_id)
            stored = True
        finally:
            if stream is not None:  # readers of unverified bytes are cut short of the end
                self._streams.finish(stream, stored)
            elif stored:  # an empty upload: no stream of its own, other uploads of it cut
                self._streams.content_stored(blob_id)
            incoming.discard()
        send_json(exchange, 201 if created else 200, {"blob_id": blob_id, "size": incoming.size})

    def _streamable(
        self,
        incoming: IncomingBlob,
        blob_id: str,
        size: int,
        readers: frozenset[str],
        uploader: str,
    ) -> UploadStream | None:
        """The upload registered for its readers to stream (``upload_streams``); None for
        an empty one (nothing to hold back until it is verified)."""
        if size == 0:
            return None
        handle = self._space.open_content(incoming, blob_id)
        if handle is None:  # stored content deleted meanwhile: the upload will say so
            return None
        with handle:
            return self._streams.register(blob_id, size, readers, handle, uploader)

    def _stored_for(self, blob_id: str, peer_id: str) -> tuple[BinaryIO, int] | None:
        try:
            return self._space.open_for(blob_id, peer_id)
        except NotFound:
            return None

    def _download(self, exchange: Exchange, peer_id: str, blob_id: str, *, counted: bool) -> None:
        """Send the blob; ``counted``: the whole body counts as this reader's fetch (else
        its reader confirms what it kept, ``_confirm_kept``)."""
        fields = [
            ("content-type", "application/octet-stream"),
            ("etag", f'"{blob_id}"'),
            ("cache-control", "private, no-store"),
        ]
        # Stored content first: uploads of the same content may still be in progress
        # (nodes whose updates are equal), and a stored copy is sent without waiting.
        # Then an upload in progress; then the store again: an upload is stored before it
        # leaves the registry, so one that ends between the two looks is found there.
        stored = self._stored_for(blob_id, peer_id)
        if stored is None:
            with self._streams.reading(blob_id, peer_id) as streaming:
                if streaming is not None:
                    stream, handle = streaming
                    try:
                        fields.append(STREAMING_HEADER)
                        exchange.send_growing(200, fields, handle, stream.size, stream.sendable)
                    except StreamCut as cut:
                        log.info("download of blob %s by %s cut: %s", blob_id, peer_id, cut)
                        raise ClientGone from cut
                    if counted:  # sent whole: served, once the content is stored
                        stream.after_stored(self._fetch_recorder(blob_id, peer_id))
                    return
            if streaming is None:
                stored = self._space.open_for(blob_id, peer_id)  # NotFound: unknown to it
        if stored is not None:
            handle, size = stored
            with handle:
                exchange.send_file(200, fields, handle, size)
        if counted:  # sent whole: retention counts this reader as served
            self._space.record_fetch(blob_id, peer_id)

    def _confirm_kept(self, exchange: Exchange, peer_id: str, blob_id: str) -> None:
        """A reader kept the blob: its fetch counts, once the content is stored (a reader
        of an upload in progress may confirm before the upload's record is written).
        Stored content the caller may read counts at once: anyone may start an upload of
        a known id naming this reader, and one that never ends would swallow the
        confirmation. An upload in progress naming it counts it again once stored (a new
        upload of stored content starts a new use, which this fetch belongs to)."""
        stream = self._streams.read_by(blob_id, peer_id)
        stored = self._space.has(blob_id) and peer_id in self._space.readers_of(blob_id)
        if stream is None and not stored:
            raise NotFound(f"blob {blob_id} not found")
        if stored:
            self._space.record_fetch(blob_id, peer_id)
        if stream is not None:
            stream.after_stored(self._fetch_recorder(blob_id, peer_id))
        send_json(exchange, 200, {"blob_id": blob_id, "kept": True})

    def _offer_again(self, exchange: Exchange, peer_id: str, blob_id: str) -> None:
        """Its uploader announces the blob again: every reader must fetch it anew. An
        upload of it in progress is one (its record starts a new use once stored)."""
        streaming = self._streams.uploaded_by(blob_id, peer_id)
        if not streaming and not self._space.offer_again(blob_id, peer_id):
            raise NotFound(f"blob {blob_id} not found")
        send_json(exchange, 200, {"blob_id": blob_id, "offered": True})

    def _fetch_recorder(self, blob_id: str, peer_id: str) -> Callable[[], None]:
        return functools.partial(self._space.record_fetch, blob_id, peer_id)

    def _too_large(self) -> MessageTooLarge:
        limit_mb = self._max_blob_bytes / (1024 * 1024)
        return MessageTooLarge(
            f"blob larger than this server's limit of {self._max_blob_bytes} bytes "
            f"({limit_mb:g} MiB)",
            hint="raise --max-blob-mb on the upload server",
        )


def create_app(
    data_dir: Path,
    tokens_file: Path,
    max_blob_bytes: int,
    quotas: StorageQuotas | None = None,
) -> UploadApp:
    """The upload server's routes over ``data_dir``, authenticating with ``tokens_file``;
    ``quotas``: how much it keeps stored (None: ``StorageQuotas()``, the defaults)."""
    space = DiskBlobSpace(Path(data_dir), quotas=quotas)
    return UploadApp(space, TokenRegistry(Path(tokens_file)), max_blob_bytes)


def _error_reply(exc: Exception, request: RequestHead) -> tuple[int, str, str]:
    """Status, code and message for a failure; only our own words reach the peer."""
    if isinstance(exc, ConfigError):
        # Details (with the tokens file path) are in the server log, not in the reply.
        return 503, "unavailable", "the server's token list is unusable"
    if isinstance(exc, BadRequest):
        return exc.status, "bad_request", exc.message
    if isinstance(exc, FedwardError):
        status = next((s for kind, s in _STATUS_OF_ERROR if isinstance(exc, kind)), 500)
        return status, exc.code, exc.message
    log.exception("failure on %s %s", request.method, request.path)
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


def _method_not_allowed(exchange: Exchange, allowed: str) -> None:
    send_error(exchange, 405, "method_not_allowed", f"allowed: {allowed}", [("allow", allowed)])


def send_json(
    exchange: Exchange, status: int, body: object, extra: Iterable[tuple[str, str]] = ()
) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode("utf-8")
    fields = [("content-type", "application/json"), ("cache-control", "no-store"), *extra]
    exchange.send_bytes(status, fields, payload)


def send_error(
    exchange: Exchange,
    status: int,
    code: str,
    message: str,
    extra: Iterable[tuple[str, str]] = (),
) -> None:
    fields = [("content-type", "application/json"), ("cache-control", "no-store"), *extra]
    exchange.send_bytes(status, fields, error_body(code, message))
