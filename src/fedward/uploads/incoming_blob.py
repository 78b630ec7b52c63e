"""One upload as its bytes arrive: hashed, counted, written to a temporary file (unless
the content is stored already), and holding its quota reservation until it is stored or
dropped. ``DiskBlobSpace`` makes them (``begin_upload_of``) and moves them into place
(``commit``)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from fedward.uploads.quotas import Reservation


class IncomingBlob:
    """The bytes of one upload as they arrive: hashed, counted and, unless the blob is
    already stored, written to a temporary file."""

    def __init__(
        self,
        temp_path: Path | None,
        handle: BinaryIO | None,
        reservation: Reservation | None = None,
        cancel: Callable[[Reservation], None] | None = None,
    ) -> None:
        self.temp_path = temp_path
        self._handle = handle
        # What the upload holds against the quotas until it is stored or dropped, and how
        # a dropped one gives it back (``DiskBlobSpace``, under its lock).
        self.reservation = reservation
        self._cancel = cancel
        self._hash = hashlib.sha256()
        self.size = 0
        self.head = b""  # the first bytes, to tell parameters from other content

    @property
    def keeps_content(self) -> bool:
        return self._handle is not None

    def write(self, chunk: bytes | memoryview) -> None:
        if len(self.head) < 16:
            self.head = (self.head + chunk[:16])[:16]
        self._hash.update(chunk)
        if self._handle is not None:
            self._handle.write(chunk)
        self.size += len(chunk)

    def blob_id(self) -> str:
        return self._hash.hexdigest()

    def flush(self) -> None:
        """Hand what was written to the kernel, where readers of the file see it."""
        if self._handle is not None:
            self._handle.flush()

    def finish(self) -> None:
        """Make the written bytes durable before they are moved into place."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        """Drop the temporary file; safe to call at any point, and more than once. The
        file goes even if closing it fails: on a full disk, closing flushes what is still
        buffered and fails again, and a partial upload left behind would hold its space
        until the server restarts. That failure is not raised: the bytes are dropped
        anyway (the descriptor is closed all the same), and the upload's own error, not
        this echo of it, is what its client must hear."""
        handle, self._handle = self._handle, None
        try:
            if handle is not None:
                with contextlib.suppress(OSError):
                    handle.close()
        finally:
            if self.temp_path is not None:
                self.temp_path.unlink(missing_ok=True)
                self.temp_path = None
            self.end_reservation()

    def end_reservation(self) -> None:
        reservation, self.reservation = self.reservation, None
        if reservation is not None and self._cancel is not None:
            self._cancel(reservation)
