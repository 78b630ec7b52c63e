"""Uploads in progress that their readers may already download: one pipe, not two copies.

Without this, a blob crosses the upload server as two copies in series: the reader can
only GET it once the whole upload arrived, was verified and moved into place. A
parameters file of 100 MB then costs its upload *plus* its download on every hop of a
round. Here an upload that declares its id and length (every upload does: the id is the
URL, the length is Content-Length) is registered as an ``UploadStream`` for its
lifetime, with the readers it declares (and its uploader), and a GET of that id by one
of them is answered from the upload's temporary file as the bytes land in it.

What makes it safe to serve bytes that are not verified yet:

- **The last byte waits for the verdict.** A reader is sent at most ``size - 1`` bytes
  while the upload is open; the last one only once the content hashed to its id. An
  upload that fails (hash mismatch, cut, stalled, too big) ends every streaming reader's
  connection short of its Content-Length, so a client sees a cut body (a transport
  error, retried), never a complete body that is wrong. (The client checks the hash of
  what it got as well.) Storing the verified content (fsyncs, the rename, the record)
  runs while the readers finish: durability is what the *uploader* waits for, and the
  readers hold verified bytes either way. A reader's download counts as a fetch (for
  retention) once the content is stored.
- **Same readers, same answer.** Only the peers the upload names may stream it, exactly
  as for a stored blob; for anyone else the id answers as an unknown blob does (404), so
  an upload in progress is no existence oracle.
- **Readers never slow the upload.** A reader reads the temporary file through its own
  file descriptor (``sendfile``, bytes never copied through Python), not a buffer the
  upload fills: a reader that stalls holds only its connection, its thread and that
  descriptor, until the server's I/O timeout ends it. At most ``max_per_reader`` GETs
  of one upload run at once per reader (a retry overlapping a dying attempt); a further
  one is answered 503, which clients try again.
- **A stored blob ends the uploads that imitate it.** Anyone may upload any id, naming
  any reader: a peer that knows an id can start a bogus upload of it before the real
  one, and a reader that asks meanwhile streams the bogus one. Once an upload of the id
  is stored, the readers of every other upload of it still unverified are cut
  (``UploadStreams.content_stored``): they try again and get the stored content, so a
  bogus upload that drips a byte at a time holds nobody past that moment.

An upload of content the server already stores (and the uploader may read) writes no
file: its stream serves the stored file, with the same rule for the last byte.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, Literal

from fedward.errors import StorageError

log = logging.getLogger(__name__)

DEFAULT_MAX_PER_READER = 2
# Readers are woken once per this many new bytes (and at the end), not once per socket
# read of the upload: each wake-up is a thread switch and a sendfile call.
WAKE_STEP_BYTES = 1024 * 1024

# open: bytes arriving; verified: all there and hashed to the id (readers may finish);
# stored: committed; lost: verified but could not be stored; failed: never verified.
_State = Literal["open", "verified", "stored", "lost", "failed"]


class StreamCut(Exception):
    """The upload a reader streams failed, or stalled past the reader's patience: its
    connection must end before the body is complete."""


class UploadStream:
    """One upload in progress, as its readers see it."""

    def __init__(
        self, blob_id: str, size: int, readers: frozenset[str], fd: int, uploader: str = ""
    ) -> None:
        self.blob_id = blob_id
        self.size = size  # the upload's declared length: the GET's Content-Length
        self.readers = readers
        self.uploader = uploader
        self._fd = fd  # read-only, on the file the upload writes (or the stored one)
        self._cond = threading.Condition()
        self._written = 0
        self._woken_at = 0
        self._state: _State = "open"
        self._superseded = False  # another upload of the id was stored meanwhile
        self._active: dict[str, int] = {}  # GETs in progress per reader
        self._when_stored: list[Callable[[], None]] = []

    def wrote(self, total: int) -> None:
        """The upload has ``total`` bytes in the file (written, visible to readers)."""
        with self._cond:
            self._written = total
            if total - self._woken_at >= WAKE_STEP_BYTES:
                self._woken_at = total
                self._cond.notify_all()

    def verified(self) -> None:
        """Every byte is there and hashed to the id: readers may have the last one."""
        with self._cond:
            self._state = "verified"
            self._cond.notify_all()

    def end(self, stored: bool) -> None:
        """The upload ended: stored, or not (then readers of unverified bytes are cut)."""
        with self._cond:
            if stored:
                self._state = "stored"
            else:
                self._state = "lost" if self._state == "verified" else "failed"
            self._cond.notify_all()
            actions, self._when_stored = self._when_stored, []
        for action in actions if stored else ():
            _run_quietly(action)

    def supersede(self) -> None:
        """Another upload of this id was stored: readers of this one's unverified bytes
        are cut (they try again and find the stored content). A verified upload holds the
        same content as the stored one: its readers finish."""
        with self._cond:
            if self._state == "open":
                self._superseded = True
                self._cond.notify_all()

    def after_stored(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the content is stored: now if it is, on the uploader's
        thread once it is, never if it is not."""
        with self._cond:
            if self._state in ("open", "verified"):
                self._when_stored.append(action)
                return
            stored = self._state == "stored"
        if stored:
            _run_quietly(action)

    def sendable(self, sent: int, patience_s: float) -> int:
        """How many bytes a reader that sent ``sent`` may have sent once it sends what is
        there: waits until that is more than ``sent``. The last byte only once the upload
        is verified; returns ``size`` (== ``sent`` at the end) when it is. StreamCut if the
        upload failed, or nothing new arrived for ``patience_s``."""
        deadline = time.monotonic() + patience_s
        with self._cond:
            while True:
                if self._state == "failed":
                    raise StreamCut(f"the upload of blob {self.blob_id} failed")
                if self._state == "open" and self._superseded:
                    raise StreamCut(f"blob {self.blob_id} was stored by another upload")
                if self._state != "open":
                    return self.size
                limit = min(self._written, self.size - 1)
                if limit > sent:
                    return limit
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StreamCut(f"the upload of blob {self.blob_id} stalled")
                self._cond.wait(left)

    def _close(self) -> None:
        os.close(self._fd)


class UploadStreams:
    """The uploads in progress that may be streamed, by blob id."""

    def __init__(self, max_per_reader: int = DEFAULT_MAX_PER_READER) -> None:
        self._max_per_reader = max_per_reader
        self._lock = threading.Lock()
        self._streams: dict[str, list[UploadStream]] = {}

    def register(
        self,
        blob_id: str,
        size: int,
        readers: frozenset[str],
        handle: BinaryIO,
        uploader: str = "",
    ) -> UploadStream:
        """Make an upload streamable; ``handle``: the file its bytes land in, opened for
        reading (the stream keeps its own descriptor: the file may be renamed or removed
        while readers read it). Several uploads of one id may run at once (anyone may send
        any content); a reader streams the first one that names it."""
        stream = UploadStream(blob_id, size, readers, os.dup(handle.fileno()), uploader)
        with self._lock:
            self._streams.setdefault(blob_id, []).append(stream)
        return stream

    def finish(self, stream: UploadStream, stored: bool) -> None:
        """The upload ended: its readers finish or are cut (``UploadStream.end``), and no
        new GET finds it (a stored one is found in the store by now). Stored, it cuts
        the readers of the other uploads of its id (``content_stored``)."""
        stream.end(stored)
        with self._lock:
            others = [s for s in self._streams.get(stream.blob_id, []) if s is not stream]
            if others:
                self._streams[stream.blob_id] = others
            else:
                self._streams.pop(stream.blob_id, None)
            stream._close()
        if stored:
            self.content_stored(stream.blob_id)

    def content_stored(self, blob_id: str) -> None:
        """An upload of ``blob_id`` was stored: the readers of every other upload of it in
        progress are cut short (``UploadStream.supersede``), so that none of them waits
        on a bogus upload of the id (one that drips, or never ends) when the store can
        serve the content at once."""
        with self._lock:
            others = list(self._streams.get(blob_id, ()))
        for other in others:
            other.supersede()

    def read_by(self, blob_id: str, reader: str) -> UploadStream | None:
        """The upload of ``blob_id`` in progress that names ``reader``, if there is one."""
        with self._lock:
            return self._naming(blob_id, reader)

    def _naming(self, blob_id: str, reader: str) -> UploadStream | None:
        """``read_by``, for a caller that holds the lock."""
        return next((s for s in self._streams.get(blob_id, []) if reader in s.readers), None)

    def uploaded_by(self, blob_id: str, peer: str) -> bool:
        """Whether ``peer`` is sending an upload of ``blob_id`` now."""
        with self._lock:
            return any(s.uploader == peer for s in self._streams.get(blob_id, []))

    @contextlib.contextmanager
    def reading(self, blob_id: str, reader: str) -> Iterator[tuple[UploadStream, BinaryIO] | None]:
        """The upload of ``blob_id`` that ``reader`` may stream, with a file of its own to
        read it from; None when there is none (the caller then answers as for any other
        blob). StorageError (503) past ``max_per_reader`` GETs of it at once."""
        with self._lock:
            stream = self._naming(blob_id, reader)
            if stream is None:
                handle = None
            elif stream._active.get(reader, 0) >= self._max_per_reader:
                raise StorageError(
                    f"too many downloads of blob {blob_id} at once by this peer",
                    hint="try again once the others end",
                )
            else:
                # A descriptor of its own, taken while the stream's is open for sure.
                handle = os.fdopen(os.dup(stream._fd), "rb", buffering=0)
                stream._active[reader] = stream._active.get(reader, 0) + 1
        if stream is None or handle is None:
            yield None
            return
        try:
            with handle:
                yield stream, handle
        finally:
            with self._lock:
                left = stream._active[reader] - 1
                if left:
                    stream._active[reader] = left
                else:
                    del stream._active[reader]


def _run_quietly(action: Callable[[], None]) -> None:
    """Bookkeeping after an upload is stored: its failure is logged, and the upload (or
    the download) that triggered it still counts."""
    try:
        action()
    except Exception:
        log.exception("bookkeeping after an upload failed")
