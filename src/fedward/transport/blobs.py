"""The ``BlobStore`` interface: content-addressed blobs (parameters, plan sources).

A blob's id is the lowercase hex sha256 of its bytes. Implementations MUST:
- verify the hash of what they download and raise ``IntegrityError`` on mismatch;
- raise ``NotFound`` for a blob that is missing *or* that the caller may not read
  (the two are indistinguishable on purpose);
- raise ``AccessDenied`` for missing or wrong credentials, ``TransportError`` when the
  server cannot be reached;
- let the uploader name the peers (``readers``) allowed to read a blob; the uploader
  can always read its own blobs;
- ``put_file(..., blob_id=...)``: the caller's sha256 of the file, taken on trust for
  the request and checked by whoever stores it;
- ``put_file(..., on_accepted=...)``: called once the upload's readers may start their
  downloads (at the latest once it is stored; the upload server streams an upload in
  progress to them), possibly again if the upload is retried;
- ``get_file(..., durable=False)``: a scratch file, not fsynced;
- ``get_file`` confirms the blob kept once ``dest`` is in place, and ``confirm_kept``
  does it for a copy the caller had already: a store that deletes what its readers
  fetched (the upload server, ``uploads.retention``) counts a reader only then, so a
  reader killed between the last byte and the rename can fetch the blob again;
- ``offer_again``: announce a blob the caller uploaded again, without sending it (its
  readers must fetch it anew); False if the store no longer holds it;
- with ``max_bytes``, refuse a blob larger than that with ``ValidationError`` (see
  ``blob_too_large``) without ever holding more than ``max_bytes`` of it plus one chunk,
  and leave no file behind: whoever sent the blob id may be hostile, and its size is
  only known while it arrives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from fedward.errors import ValidationError


class BlobStore(Protocol):
    def put_bytes(self, data: bytes, readers: Sequence[str]) -> str: ...

    def put_file(
        self,
        path: Path,
        readers: Sequence[str],
        *,
        blob_id: str | None = None,
        on_accepted: Callable[[], object] | None = None,
    ) -> str: ...

    def get_bytes(self, blob_id: str, *, max_bytes: int | None = None) -> bytes: ...

    def get_file(
        self, blob_id: str, dest: Path, *, max_bytes: int | None = None, durable: bool = True
    ) -> Path: ...

    def confirm_kept(self, blob_id: str) -> None: ...

    def offer_again(self, blob_id: str) -> bool: ...


def blob_too_large(blob_id: str, max_bytes: int) -> ValidationError:
    """The error every store raises for a blob over the caller's ``max_bytes``."""
    return ValidationError(
        f"blob {blob_id} is larger than the limit of {_size_text(max_bytes)}",
        hint="nothing of it was kept",
    )


def check_max_bytes(max_bytes: int | None) -> None:
    if max_bytes is not None and (isinstance(max_bytes, bool) or max_bytes < 0):
        raise ValidationError(f"max_bytes must be a non-negative int or None, not {max_bytes!r}")


def _size_text(size: int) -> str:
    if size >= 1 << 20:
        return f"{size / (1 << 20):g} MiB ({size} bytes)"
    return f"{size} bytes"


_HASH_CHUNK_BYTES = 1 << 20


def file_sha256(path: Path) -> str:
    """The blob id of a file's content (read once, through one reused buffer)."""
    digest = hashlib.sha256()
    buffer = memoryview(bytearray(_HASH_CHUNK_BYTES))
    with open(path, "rb", buffering=0) as handle:
        while got := handle.readinto(buffer):
            digest.update(buffer[:got])
    return digest.hexdigest()
