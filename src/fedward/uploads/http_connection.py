"""One connection of the upload server: request heads read, bodies and answers moved.

``serve_connection`` runs a keep-alive connection to its end: it reads a request head
(strictly: ``http_wire``) within ``head_timeout_s`` of its first byte, hands it with an
``Exchange`` to the handler, and goes on with the next request while the connection can
be reused. An upload is read with ``recv_into`` one reused 1 MiB buffer and passed on as
memoryviews of it; a download goes out with ``sendfile`` (file to socket inside the
kernel). A head that is malformed or late is answered 4xx and the connection closed; an
answer given without reading the body also closes it, after a lingering half-close so
the client reads the answer rather than a reset.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO, Protocol

from fedward.uploads.http_wire import (
    HEAD_END,
    MAX_HEAD_BYTES,
    BadRequest,
    RequestHead,
    error_body,
    parse_head,
    response_head,
)

ACCESS_LOG = logging.getLogger("fedward.uploads.access")
RECEIVE_BUFFER_BYTES = 1024 * 1024
# After an answer given without reading the body, what is drained before closing, so the
# client reads the answer instead of a reset (RFC 9112 9.6's "lingering close").
_LINGER_S, _LINGER_BYTES = 2.0, 64 * 1024 * 1024


@dataclass(frozen=True)
class Timeouts:
    head_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    io_timeout_s: float = 60.0


DEFAULT_TIMEOUTS = Timeouts()


class ClientGone(Exception):
    """The client hung up, or stalled past the timeout, mid-request."""


class Handler(Protocol):
    def handle(self, request: RequestHead, exchange: Exchange) -> None: ...


class Exchange:
    """One request's body and answer, on its connection."""

    def __init__(
        self, sock: socket.socket, request: RequestHead, leftover: bytearray, buffer: bytearray
    ) -> None:
        self._sock = sock
        self._buffer = buffer  # the connection's receive buffer, reused by every body
        self.request = request
        self._leftover = leftover  # bytes read past the head: the body's start
        self.body_read = request.content_length in (None, 0)
        self.started = False  # the answer's head is out: no error answer is possible now
        self.reusable = request.keep_alive
        self.status = 0

    def read_body(self, sink: Callable[[memoryview], object]) -> int:
        """Pass the whole body to ``sink`` in pieces of at most 1 MiB; ClientGone
        if the client stops sending first. Returns the body's length."""
        remaining = self.request.content_length or 0
        total = remaining
        if self._leftover:
            first = bytes(self._leftover[:remaining])
            del self._leftover[: len(first)]
            remaining -= len(first)
            sink(memoryview(first))
        view = memoryview(self._buffer)
        while remaining:
            try:
                got = self._sock.recv_into(view, min(remaining, len(view)))
            except OSError as exc:  # timeout, reset
                raise ClientGone from exc
            if not got:
                raise ClientGone
            remaining -= got
            sink(view[:got])
        self.body_read = True
        return total

    def send_bytes(self, status: int, fields: Iterable[tuple[str, str]], body: bytes) -> None:
        """The answer, with ``body`` unless the request is a HEAD: its answer is the head
        a GET would get, and a body after it would be read as the next answer on the
        connection (RFC 9110 9.3.2). Only these answers reach a HEAD: the routes that send
        files accept GET and PUT alone."""
        head = self._head(status, [*fields, ("content-length", str(len(body)))])
        self._sendall(head if self.request.method == "HEAD" else head + body)

    def send_file(
        self, status: int, fields: Iterable[tuple[str, str]], handle: BinaryIO, size: int
    ) -> None:
        """The head, then ``size`` bytes of ``handle`` by ``sendfile``. An error after the
        head has gone out ends the connection (the client's hash check sees the cut)."""
        self._sendall(self._head(status, [*fields, ("content-length", str(size))]))
        try:
            sent = self._sock.sendfile(handle, 0, size)
        except OSError as exc:
            self.reusable = False
            raise ClientGone from exc
        if sent != size:  # the file shrank under us: the body cannot be completed
            self.reusable = False
            raise OSError(f"sent {sent} of {size} bytes")

    def send_continue(self) -> None:
        """``100 Continue``, if the client asked for it (``Expect: 100-continue``) and
        its body is still to come: it then knows the request head was accepted (an upload
        is registered and can be streamed) before it sends the body."""
        expect = (self.request.header("expect") or "").lower()
        if expect == "100-continue" and not self.body_read and self.request.minor_version:
            self._sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def send_growing(
        self,
        status: int,
        fields: Iterable[tuple[str, str]],
        handle: BinaryIO,
        size: int,
        sendable: Callable[[int, float], int],
    ) -> None:
        """The head, then ``size`` bytes of a file that is still being written, each part
        by ``sendfile`` once ``sendable(sent, patience_s)`` says it is there. Whatever
        ``sendable`` raises ends the connection before the body is complete."""
        self._sendall(self._head(status, [*fields, ("content-length", str(size))]))
        patience_s = 2 * (self._sock.gettimeout() or 60.0)
        sent = 0
        try:
            while (limit := sendable(sent, patience_s)) > sent:
                try:
                    got = self._sock.sendfile(handle, sent, limit - sent)
                except OSError as exc:
                    raise ClientGone from exc
                if got != limit - sent:  # the file is shorter than the upload said
                    raise OSError(f"sent {sent + got} of {limit} bytes")
                sent = limit
        except BaseException:
            self.reusable = False
            raise

    def _head(self, status: int, fields: list[tuple[str, str]]) -> bytes:
        if not self.body_read:
            self.reusable = False
        if not self.reusable:
            fields.append(("connection", "close"))
        self.started, self.status = True, status
        return response_head(status, fields)

    def _sendall(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as exc:
            self.reusable = False
            raise ClientGone from exc


def serve_connection(
    handler: Handler,
    sock: socket.socket,
    address: object,
    *,
    timeouts: Timeouts = DEFAULT_TIMEOUTS,
    stopping: threading.Event | None = None,
    busy: Callable[[bool], object] = lambda _: None,
) -> None:
    """Serve requests on ``sock`` until the client closes, idles out, sends something
    unreadable or ``stopping`` is set; ``busy(True/False)`` around each request. The
    caller closes ``sock``."""
    buffer = bytearray(RECEIVE_BUFFER_BYTES)
    pending = bytearray()
    try:
        while stopping is None or not stopping.is_set():
            try:
                raw = _read_head(sock, pending, timeouts)
            except BadRequest as exc:
                _refuse(sock, exc, timeouts)
                return
            if raw is None:
                return
            try:
                request = parse_head(raw)
            except BadRequest as exc:
                _refuse(sock, exc, timeouts)
                return
            sock.settimeout(timeouts.io_timeout_s)
            exchange = Exchange(sock, request, pending, buffer)
            busy(True)
            try:
                handler.handle(request, exchange)
            finally:
                busy(False)
            ACCESS_LOG.info("%s %s %s %d", address, request.method, request.path, exchange.status)
            if not exchange.reusable:
                if not exchange.body_read:
                    _linger(sock)
                return
    except ClientGone:
        return


def _read_head(sock: socket.socket, pending: bytearray, timeouts: Timeouts) -> bytes | None:
    """The next request head (without its empty line), leaving what follows it in
    ``pending``; None when the client closed or idled out between requests."""
    deadline: float | None = None
    while True:
        end = pending.find(HEAD_END)
        if end >= 0:
            raw = bytes(pending[:end])
            del pending[: end + len(HEAD_END)]
            return raw
        if len(pending) > MAX_HEAD_BYTES:
            raise BadRequest(f"request head larger than {MAX_HEAD_BYTES} bytes", 431)
        if pending and deadline is None:
            deadline = time.monotonic() + timeouts.head_timeout_s
        if deadline is None:
            sock.settimeout(timeouts.idle_timeout_s)
        else:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BadRequest("request head not received in time", 408)
            sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            if deadline is None:
                return None  # idle keep-alive connection
            raise BadRequest("request head not received in time", 408) from None
        except OSError:
            return None
        if not chunk:
            return None
        pending += chunk


def _refuse(sock: socket.socket, exc: BadRequest, timeouts: Timeouts) -> None:
    body = error_body("bad_request", exc.message)
    head = response_head(
        exc.status,
        [
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("connection", "close"),
        ],
    )
    with contextlib.suppress(OSError):
        sock.settimeout(timeouts.head_timeout_s)
        sock.sendall(head + body)
        _linger(sock)


def _linger(sock: socket.socket) -> None:
    """Half-close, then read and drop what the client still sends, for a while: closing
    with unread bytes would reset the connection and could destroy the answer in flight."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _LINGER_S
        drained = 0
        while drained < _LINGER_BYTES:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(left)
            chunk = sock.recv(1024 * 1024)
            if not chunk:
                return
            drained += len(chunk)
