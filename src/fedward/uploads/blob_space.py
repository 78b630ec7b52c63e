"""Blobs on disk: content files named by their sha256, and who may read each one.

Layout under the data dir::

    objects/<first 2 hex>/<sha256>           the content; written once, never changed
    readers/<first 2 hex>/<sha256>.json      {"size": n, "readers": ["peer", ...]}
    incoming/<random>.part                   uploads in progress

``incoming/`` sits on the same file system as ``objects/``, so a finished upload is
moved into place with one atomic ``os.replace``; whatever is left in it at start-up
belongs to an upload that died and is removed.

Reader lists are small JSON sidecar files rather than an SQLite table because each
blob's metadata is independent, tiny and only ever grows: a sidecar is written with
the same atomic-replace primitive as the content, needs no schema or migration, and a
damaged one affects a single blob. The server is one process; a lock serialises reader
updates. Content is committed before its sidecar, so a crash in between leaves a blob
nobody can read (it fails closed) until its bytes are uploaded again with readers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from fedward.core.ids import validate_sha256
from fedward.errors import NotFound
from fedward.storage.atomic import atomic_write_text, fsync_dir

log = logging.getLogger(__name__)


class IncomingBlob:
    """The bytes of one upload as they arrive: hashed, counted and, unless the blob is
    already stored, written to a temporary file."""

    def __init__(self, temp_path: Path | None, handle: BinaryIO | None) -> None:
        self.temp_path = temp_path
        self._handle = handle
        self._hash = hashlib.sha256()
        self.size = 0

    @property
    def keeps_content(self) -> bool:
        return self._handle is not None

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        if self._handle is not None:
            self._handle.write(chunk)
        self.size += len(chunk)

    def blob_id(self) -> str:
        return self._hash.hexdigest()

    def finish(self) -> None:
        """Make the written bytes durable before they are moved into place."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            self._handle = None

    def discard(self) -> None:
        """Drop the temporary file; safe to call at any point, and more than once."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self.temp_path is not None:
            self.temp_path.unlink(missing_ok=True)
            self.temp_path = None


class DiskBlobSpace:
    def __init__(self, data_dir: Path) -> None:
        self._objects = Path(data_dir) / "objects"
        self._readers = Path(data_dir) / "readers"
        self._incoming = Path(data_dir) / "incoming"
        for directory in (self._objects, self._readers, self._incoming):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._readers_lock = threading.Lock()
        self._remove_abandoned_uploads()

    def has(self, blob_id: str) -> bool:
        return self._object_path(blob_id).is_file()

    def begin_upload(self, *, keep_content: bool) -> IncomingBlob:
        if not keep_content:
            return IncomingBlob(None, None)
        fd, name = tempfile.mkstemp(suffix=".part", dir=self._incoming)
        os.fchmod(fd, 0o600)
        return IncomingBlob(Path(name), os.fdopen(fd, "wb"))

    def commit(self, incoming: IncomingBlob, readers: Iterable[str]) -> None:
        """Move a verified upload into place (if it carried new content), then add readers."""
        blob_id = incoming.blob_id()
        if incoming.temp_path is not None:
            incoming.finish()
            target = self._object_path(blob_id)
            target.parent.mkdir(mode=0o700, exist_ok=True)
            incoming.temp_path.replace(target)
            incoming.temp_path = None
            fsync_dir(target.parent)
        self.add_readers(blob_id, incoming.size, readers)

    def add_readers(self, blob_id: str, size: int, readers: Iterable[str]) -> None:
        with self._readers_lock:
            current = self.readers_of(blob_id)
            wanted = current | frozenset(readers)
            if wanted == current:
                return
            path = self._readers_path(blob_id)
            path.parent.mkdir(mode=0o700, exist_ok=True)
            record = {"size": size, "readers": sorted(wanted)}
            atomic_write_text(path, json.dumps(record) + "\n", mode=0o600)

    def readers_of(self, blob_id: str) -> frozenset[str]:
        path = self._readers_path(blob_id)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            return frozenset(str(reader) for reader in record["readers"])
        except FileNotFoundError:
            return frozenset()
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("readers of blob %s unreadable, nobody may read it: %s", blob_id, exc)
            return frozenset()

    def open_for(self, blob_id: str, peer_id: str) -> tuple[BinaryIO, int]:
        """An open file and its size, if ``peer_id`` may read the blob; NotFound otherwise."""
        if peer_id not in self.readers_of(blob_id):
            raise NotFound(f"blob {blob_id} not found")
        try:
            handle = open(self._object_path(blob_id), "rb")  # noqa: SIM115 - caller closes
        except FileNotFoundError as exc:
            raise NotFound(f"blob {blob_id} not found") from exc
        return handle, os.fstat(handle.fileno()).st_size

    # Ids are checked again here, not only by the app: they become file names.
    def _object_path(self, blob_id: str) -> Path:
        validate_sha256(blob_id)
        return self._objects / blob_id[:2] / blob_id

    def _readers_path(self, blob_id: str) -> Path:
        validate_sha256(blob_id)
        return self._readers / blob_id[:2] / f"{blob_id}.json"

    def _remove_abandoned_uploads(self) -> None:
        for leftover in self._incoming.glob("*.part"):
            leftover.unlink(missing_ok=True)
