"""The ``BlobStore`` interface: content-addressed blobs (parameters, plan sources).

A blob's id is the lowercase hex sha256 of its bytes. Implementations MUST:
- verify the hash of what they download and raise ``IntegrityError`` on mismatch;
- raise ``NotFound`` for a blob that is missing *or* that the caller may not read
  (the two are indistinguishable on purpose);
- raise ``AccessDenied`` for missing or wrong credentials, ``TransportError`` when the
  server cannot be reached;
- let the uploader name the peers (``readers``) allowed to read a blob; the uploader
  can always read its own blobs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    def put_bytes(self, data: bytes, readers: Sequence[str]) -> str: ...

    def put_file(self, path: Path, readers: Sequence[str]) -> str: ...

    def get_bytes(self, blob_id: str) -> bytes: ...

    def get_file(self, blob_id: str, dest: Path) -> Path: ...
