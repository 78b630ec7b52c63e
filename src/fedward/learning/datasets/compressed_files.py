"""Reading dataset files that may be gzipped, without trusting what their headers claim.

A header's sizes are checked against what the file can hold before anything is read:
the file's own size when it is plain, and ``MAX_DEFLATE_RATIO`` times its size when it
is gzipped (deflate cannot expand more than about 1032:1, so a header that announces more
lies). Counting a gzip stream's bytes stops once past the size the caller expects, so a
decompression bomb costs at most what its header announced, never what it holds.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO

GZIP_MAGIC = b"\x1f\x8b"
#: Deflate's largest expansion is 258 bytes out of 2 bits (about 1032:1); a little more
#: allows for the gzip framing of small files.
MAX_DEFLATE_RATIO = 1032
_FRAMING_BYTES = 1 << 10
CHUNK_BYTES = 1 << 20


def is_gzip(path: Path) -> bool:
    """Recognised by its magic bytes, not its name."""
    with Path(path).open("rb") as probe:
        return probe.read(2) == GZIP_MAGIC


def open_maybe_gzip(path: Path) -> BinaryIO:
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return Path(path).open("rb")


def max_content_bytes(path: Path) -> int:
    """The most bytes ``open_maybe_gzip(path)`` can give, from the file's size alone."""
    size = Path(path).stat().st_size
    return (size + _FRAMING_BYTES) * MAX_DEFLATE_RATIO if is_gzip(path) else size


def count_bytes_up_to(handle: BinaryIO, limit: int) -> int:
    """How many bytes are left in ``handle``, counting no further than just past ``limit``
    (the result is then above ``limit``). Memory O(chunk)."""
    count = 0
    while count <= limit:
        chunk = handle.read(min(CHUNK_BYTES, limit - count + 1))
        if not chunk:
            break
        count += len(chunk)
    return count
