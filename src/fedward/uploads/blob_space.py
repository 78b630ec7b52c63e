"""Blobs on disk: content files named by their sha256, and who may read each one.

Layout under the data dir::

    objects/<first 2 hex>/<sha256>           the content; written once, never changed
    readers/<first 2 hex>/<sha256>.json      its ``BlobRecord``: size, readers, and use
    incoming/<random>.part                   uploads in progress

``incoming/`` sits on the same file system as ``objects/``, so a finished upload is
moved into place with one atomic ``os.replace``; whatever is left in it at start-up
belongs to an upload that died and is removed.

Reader lists are small JSON sidecar files rather than an SQLite table because each
blob's metadata is independent, tiny and only ever grows: a sidecar is written with
the same atomic-replace primitive as the content, needs no schema or migration, and a
damaged one affects a single blob. The server is one process; a lock serialises reader
updates. An upload's content and sidecar are renamed into place under the lock and
flushed to disk after it (an upload waiting for the disk holds up nobody else), before
its uploader hears it is stored; a crash in between leaves a blob without its content or
its sidecar, which nobody can read (it fails closed) until it is uploaded again.

The sidecar also records how the blob is used, for ``retention``: who uploaded it, which
readers fetched it whole since its last upload, when it was last used, and whether its
content is a parameters file (safetensors) or something else (a plan). Deleting a blob
takes the same lock, so it never races an upload of the same content: an upload that
found the content stored and meant to reuse it fails with ``StorageError`` (503) if the
content was deleted meanwhile, and its client sends it again.

The space keeps count of what it stores against its quotas (``quotas``): counted from
the disk at start-up (each sidecar names the blob's uploaders), charged as each upload is
stored and released as each blob is deleted, under the same lock. An upload reserves its
declared length before its first byte is written, and is refused (``QuotaExceeded``)
if that would pass a quota.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import BinaryIO, Literal

from fedward.core.ids import SHA256_PATTERN, validate_sha256
from fedward.errors import NotFound, StorageError
from fedward.storage.atomic import atomic_write_text, fsync_dir, fsync_path
from fedward.uploads.incoming_blob import IncomingBlob
from fedward.uploads.quotas import (
    Charge,
    QuotaLedger,
    Reservation,
    StorageQuotas,
    default_total_bytes,
)

log = logging.getLogger(__name__)

BlobKind = Literal["parameters", "other"]


@dataclass(frozen=True)
class BlobRecord:
    """What the sidecar of a blob says. ``fetched_by`` holds the readers that downloaded
    the whole blob since it was last uploaded; times are seconds since the epoch."""

    size: int
    readers: frozenset[str]
    uploaders: frozenset[str] = frozenset()
    kind: BlobKind = "other"
    fetched_by: frozenset[str] = frozenset()
    last_used: float = 0.0
    spent_at: float | None = None  # when the last reader (not an uploader) fetched it

    @property
    def waiting_for(self) -> frozenset[str]:
        """Readers, other than its uploaders, that have not fetched it yet."""
        return self.readers - self.uploaders - self.fetched_by

    def to_json(self) -> str:
        record = asdict(self)
        for key in ("readers", "uploaders", "fetched_by"):
            record[key] = sorted(record[key])
        return json.dumps(record) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BlobRecord:
        data = json.loads(text)
        # Sidecars written before use was recorded hold size and readers only.
        spent_at = data.get("spent_at")
        return cls(
            size=int(data["size"]),
            readers=frozenset(str(r) for r in data["readers"]),
            uploaders=frozenset(str(r) for r in data.get("uploaders", ())),
            kind="parameters" if data.get("kind") == "parameters" else "other",
            fetched_by=frozenset(str(r) for r in data.get("fetched_by", ())),
            last_used=float(data.get("last_used", 0.0)),
            spent_at=None if spent_at is None else float(spent_at),
        )


def looks_like_parameters(head: bytes, size: int) -> bool:
    """Whether content starting with ``head`` is laid out as a safetensors file: an 8-byte
    header length that fits the file, then a JSON object. (Plans are Python text.)"""
    if len(head) < 9 or head[8:9] != b"{":
        return False
    return 2 <= int.from_bytes(head[:8], "little") <= size - 8


class DiskBlobSpace:
    def __init__(
        self, data_dir: Path, *, server: bool = True, quotas: StorageQuotas | None = None
    ) -> None:
        """``server=False`` for another process (``fedward uploads gc``) beside a running
        server: it must not take the server's uploads in progress for abandoned ones (and
        counts nothing against the quotas, which are the server's)."""
        self._objects = Path(data_dir) / "objects"
        self._readers = Path(data_dir) / "readers"
        self._incoming = Path(data_dir) / "incoming"
        for directory in (self._objects, self._readers, self._incoming):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        if server:
            self._remove_abandoned_uploads()
        quotas = quotas or StorageQuotas()
        charges = list(self._charges_on_disk()) if server else []
        total_limit = quotas.total_bytes
        if total_limit is None:
            stored = sum(charge.content_bytes for _, charge in charges)
            total_limit = default_total_bytes(Path(data_dir), stored)
        self._ledger = QuotaLedger(quotas.peer_bytes, total_limit, charges)

    @property
    def quotas(self) -> QuotaLedger:
        """The counts against the quotas; read them under no lock for a glance only."""
        return self._ledger

    def has(self, blob_id: str) -> bool:
        return self._object_path(blob_id).is_file()

    def begin_upload(self, *, keep_content: bool) -> IncomingBlob:
        if not keep_content:
            return IncomingBlob(None, None)
        return self._incoming_file()

    def begin_upload_of(self, blob_id: str, uploader: str, *, declared_bytes: int) -> IncomingBlob:
        """An upload of ``blob_id``, ``declared_bytes`` long: its bytes are kept only if
        the content is not stored yet. Stored content is marked in use under the lock
        that deletion takes, so the collector cannot delete it while the same bytes
        arrive again (the upload would then fail only after all of them were sent). Only
        a peer that may read the blob pins it this way; for anyone else the bytes are
        kept as for new content. QuotaExceeded, before anything is written, if what it
        would add passes a quota (``quotas``)."""
        with self._lock:
            record = self.record_of(blob_id) if self.has(blob_id) else None
            if record is not None and uploader in record.readers:
                # No file: only this peer's count may grow, if it was not an uploader.
                charged = self._ledger.charged_to(blob_id, uploader)
                reservation = self._ledger.reserve(
                    uploader, peer_bytes=0 if charged else declared_bytes, total_bytes=0
                )
                pinned = replace(record, spent_at=None, last_used=time.time())
                self._write_record(blob_id, pinned, durable=False)
                return IncomingBlob(None, None, reservation, self._cancel)
            reservation = self._ledger.reserve(
                uploader, peer_bytes=declared_bytes, total_bytes=declared_bytes
            )
        try:
            return self._incoming_file(reservation)
        except BaseException:
            self._cancel(reservation)
            raise

    def _incoming_file(self, reservation: Reservation | None = None) -> IncomingBlob:
        fd, name = tempfile.mkstemp(suffix=".part", dir=self._incoming)
        os.fchmod(fd, 0o600)
        return IncomingBlob(Path(name), os.fdopen(fd, "wb"), reservation, self._cancel)

    def _cancel(self, reservation: Reservation) -> None:
        with self._lock:
            self._ledger.cancel(reservation)

    def commit(self, incoming: IncomingBlob, readers: Iterable[str], uploader: str) -> None:
        """Move a verified upload into place (if it carried new content), then record its
        readers. A new upload of stored content starts a new use: no reader has fetched
        this upload yet."""
        blob_id = incoming.blob_id()
        new_content = incoming.temp_path is not None
        if new_content:
            incoming.finish()
        with self._lock:
            target = self._object_path(blob_id)
            if incoming.temp_path is not None:
                target.parent.mkdir(mode=0o700, exist_ok=True)
                incoming.temp_path.replace(target)
                incoming.temp_path = None
            elif not target.is_file():
                raise StorageError(
                    f"blob {blob_id} was deleted while it was uploaded again",
                    hint="send it again",
                )
            current = self.record_of(blob_id)
            kind: BlobKind = (
                "parameters" if looks_like_parameters(incoming.head, incoming.size) else "other"
            )
            base = current or BlobRecord(size=incoming.size, readers=frozenset(), kind=kind)
            record = replace(
                base,
                readers=base.readers | frozenset(readers) | {uploader},
                uploaders=base.uploaders | {uploader},
                fetched_by=frozenset(),
                spent_at=None,
                last_used=time.time(),
            )
            self._write_record(blob_id, record, durable=False)
            # The reservation becomes the blob's charge in one step: nobody sees both.
            self._ledger.charge(blob_id, Charge(incoming.size, record.size, record.uploaders))
            reservation, incoming.reservation = incoming.reservation, None
            if reservation is not None:
                self._ledger.cancel(reservation)
        # Durable before the uploader hears that it is stored, but flushed outside the
        # lock: other uploads and fetches need not wait for this one's disk. Either
        # rename may reach the disk first; without its record or its content a blob
        # reads as unknown (it fails closed) until it is uploaded again.
        self._flush_commit(blob_id, target.parent if new_content else None)

    def _flush_commit(self, blob_id: str, content_dir: Path | None) -> None:
        record = self._readers_path(blob_id)
        try:
            fsync_path(record)
            fsync_dir(record.parent)
            if content_dir is not None:
                fsync_dir(content_dir)
        except FileNotFoundError:  # deleted meanwhile: nothing left to make durable
            log.info("blob %s was deleted while it was being stored", blob_id)

    def record_fetch(self, blob_id: str, reader: str) -> None:
        """``reader`` downloaded the whole blob."""
        with self._lock:
            record = self.record_of(blob_id)
            if record is None:
                return
            fetched = record.fetched_by | {reader}
            spent_at = record.spent_at
            if spent_at is None and not (record.readers - record.uploaders - fetched):
                spent_at = time.time()
            # Bookkeeping for retention: not fsynced, which keeps two disk flushes off
            # every download. A power cut may forget the fetch (the blob is kept until its
            # age passes) or leave the record unreadable (the blob fails closed).
            self._write_record(
                blob_id,
                replace(record, fetched_by=fetched, spent_at=spent_at, last_used=time.time()),
                durable=False,
            )

    def offer_again(self, blob_id: str, uploader: str) -> bool:
        """``uploader`` announces the blob again: a new use, as an upload of the same
        content starts (no reader has fetched it since). False if it is gone, or if
        ``uploader`` never uploaded it."""
        with self._lock:
            record = self.record_of(blob_id) if self.has(blob_id) else None
            if record is None or uploader not in record.uploaders:
                return False
            renewed = replace(record, fetched_by=frozenset(), spent_at=None, last_used=time.time())
            self._write_record(blob_id, renewed, durable=False)
            return True

    def readers_of(self, blob_id: str) -> frozenset[str]:
        record = self.record_of(blob_id)
        return record.readers if record is not None else frozenset()

    def record_of(self, blob_id: str) -> BlobRecord | None:
        """The blob's sidecar; None when it has none, or one nobody can trust (then
        nobody may read the blob: it fails closed)."""
        path = self._readers_path(blob_id)
        try:
            return BlobRecord.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.error("readers of blob %s unreadable, nobody may read it: %s", blob_id, exc)
            return None

    def _write_record(self, blob_id: str, record: BlobRecord, *, durable: bool = True) -> None:
        path = self._readers_path(blob_id)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        atomic_write_text(path, record.to_json(), mode=0o600, durable=durable)

    def blob_ids(self) -> Iterator[str]:
        """Every stored blob (content present), in no particular order."""
        for shard in self._objects.iterdir():
            if shard.is_dir():
                for path in shard.iterdir():
                    if SHA256_PATTERN.fullmatch(path.name):
                        yield path.name

    def record_stamp(self, blob_id: str) -> tuple[int, int, int] | None:
        """(inode, mtime in ns, size) of the blob's sidecar; None without one. Each write
        of a sidecar is a new file renamed into place, so a new write has a new stamp
        (unless it lands in the same tick of the file system's clock: ``retention``)."""
        try:
            info = self._readers_path(blob_id).stat()
        except FileNotFoundError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def stored_at(self, blob_id: str) -> tuple[int, float] | None:
        """(size, mtime) of the blob's content file; None once it is gone."""
        try:
            info = self._object_path(blob_id).stat()
        except FileNotFoundError:
            return None
        return info.st_size, info.st_mtime

    def delete_if(self, blob_id: str, still_wanted: Callable[[BlobRecord | None], bool]) -> int:
        """Delete the blob unless ``still_wanted(its record)``, decided and done under the
        lock that uploads and fetches take; returns the bytes freed (0: kept)."""
        with self._lock:
            if still_wanted(self.record_of(blob_id)):
                return 0
            stored = self.stored_at(blob_id)
            # The content first: a sidecar without content reads as NotFound, while
            # content without a sidecar would be content nobody can read or delete.
            self._object_path(blob_id).unlink(missing_ok=True)
            self._readers_path(blob_id).unlink(missing_ok=True)
            self._ledger.release(blob_id)
            return stored[0] if stored else 0

    def forget_deleted(self, present: Iterable[str]) -> None:
        """Release the quota counts of blobs deleted by another process (``fedward
        uploads gc`` beside the server): those counted but not in ``present`` (a walk of
        ``blob_ids``) and gone now. One stored after the walk began is still there."""
        with self._lock:
            for blob_id in self._ledger.charged_ids() - set(present):
                if not self.has(blob_id):
                    self._ledger.release(blob_id)

    def _charges_on_disk(self) -> Iterator[tuple[str, Charge]]:
        """What each stored blob counts against the quotas, read at start-up. Content
        without a readable sidecar counts against the total only (it is on the disk)."""
        for blob_id in self.blob_ids():
            stored = self.stored_at(blob_id)
            if stored is None:
                continue
            record = self.record_of(blob_id)
            if record is None:
                yield blob_id, Charge(stored[0], 0, frozenset())
            else:
                yield blob_id, Charge(stored[0], record.size, record.uploaders)

    def open_for(self, blob_id: str, peer_id: str) -> tuple[BinaryIO, int]:
        """An open file and its size, if ``peer_id`` may read the blob; NotFound otherwise."""
        if peer_id not in self.readers_of(blob_id):
            raise NotFound(f"blob {blob_id} not found")
        try:
            handle = open(self._object_path(blob_id), "rb")  # noqa: SIM115 - caller closes
        except FileNotFoundError as exc:
            raise NotFound(f"blob {blob_id} not found") from exc
        return handle, os.fstat(handle.fileno()).st_size

    def open_content(self, incoming: IncomingBlob, blob_id: str) -> BinaryIO | None:
        """The file an upload's content can be read from while it arrives: its temporary
        file, or (an upload of stored content) the stored one; None if that is gone."""
        path = incoming.temp_path or self._object_path(blob_id)
        try:
            return open(path, "rb", buffering=0)
        except FileNotFoundError:
            return None

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
