"""A job's result, copied out of the worker's reach, hashed and checked in one pass.

The worker's file is hostile input, and a warm worker could rewrite it after reporting,
so the daemon copies it to a file of its own before trusting it. This copy is also the
only read of the worker's bytes: the header is copied first and parsed from the
daemon's copy (so what is checked is what was copied, whatever the worker does to its
file meanwhile), its layout checked against what the job was sent; then each tensor is
copied a chunk at a time, and each chunk hashed (the blob id, so the upload needs no
second read) and value-checked while it is in the cache. Exactly the bytes the header
describes are copied, so a file that grows after the size check adds nothing, and one
that shrinks is refused. Nothing is fsynced: the copy is scratch, and a node that
crashes runs the job again.

Measured on a 100 MB result (2-core VM, page cache warm): read 13 ms, write 25 ms,
sha256 58 ms (SHA-NI), min/max 3 ms. ``copy_file_range`` saves the read's memcpy but the
hash and the value check then read the copy again; no faster (``docs/benchmarks.md``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from fedward.errors import ProtocolError
from fedward.node.jobs.results import ResultCheck
from fedward.protocol.safetensors_header import MAX_HEADER_BYTES, read_header

_CHUNK = 1 << 20  # a chunk stays in the CPU's cache between the hash and the check


def copy_checked(source: int, size: int, dest: Path, check: ResultCheck) -> str:
    """Copy the safetensors file open as ``source`` (``size`` bytes, as its ``fstat``
    said) to a new private ``dest``; its sha256. A ``JobError`` (from ``check``) for a
    malformed file, a layout other than the job's, or a value past the bounds; ``dest``
    is removed then."""
    digest = hashlib.sha256()
    buffer = np.empty(_CHUNK, dtype=np.uint8)
    try:
        with open(dest, "w+b", buffering=0, opener=_private_opener) as out:
            head = _read_head(source, size)
            digest.update(head)
            _write_all(out.fileno(), memoryview(head))
            try:
                entries = read_header(out.fileno(), size)
            except ProtocolError as exc:
                raise check.invalid(exc) from exc
            check.check_layout({name: (e.shape, e.dtype) for name, e in entries.items()})
            # In file order: the header's check guarantees the tensors follow it without
            # holes, so the copy is written front to back.
            for name, entry in sorted(entries.items(), key=lambda item: item[1].offset):
                step = _CHUNK - _CHUNK % entry.dtype.itemsize
                for start in range(0, entry.nbytes, step):
                    count = min(step, entry.nbytes - start)
                    chunk = memoryview(buffer[:count])  # type: ignore[arg-type]
                    if _pread_all(source, chunk, entry.offset + start) != count:
                        raise check.invalid(
                            ProtocolError(f"parameters file ended inside tensor {name!r}")
                        )
                    digest.update(chunk)
                    _write_all(out.fileno(), chunk)
                    check.check_values(name, buffer[:count].view(entry.dtype))
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def _read_head(source: int, size: int) -> bytes:
    """The length prefix and as much of the header as it claims and the file can hold
    (``read_header`` then judges the claim on the copy)."""
    prefix = os.pread(source, 8, 0)
    if len(prefix) < 8:
        return prefix
    claimed = int.from_bytes(prefix, "little")
    length = max(0, min(claimed, MAX_HEADER_BYTES, size - 8))
    header = bytearray(length)
    got = _pread_all(source, memoryview(header), 8)
    return prefix + bytes(header[:got])


def _pread_all(fd: int, view: memoryview, offset: int) -> int:
    """Fill ``view`` from ``offset``; fewer bytes only at the end of the file."""
    done = 0
    while done < len(view):
        count = os.preadv(fd, [view[done:]], offset + done)
        if count <= 0:
            break
        done += count
    return done


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view) :]


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
