"""Writing parameters as safetensors without copying them.

safetensors' own writer builds the whole file in memory (a copy of every tensor) and
fedward then had to rewrite its header to sort the metadata (a second and third copy).
The format is simple enough to write directly: an 8-byte little-endian header length,
a JSON header, then each tensor's raw little-endian bytes. Here the header is built
once, and the tensors go from their own buffers to the file (or into one joined
``bytes``), hashed on the way when the caller wants the blob id.

The layout is deterministic: tensors in name order, the header's keys sorted, padded
with spaces to a multiple of 8 bytes (as safetensors pads, so buffers stay aligned). The
same parameters always give the same bytes, hence the same blob id: a resumed round's
requests must match the first ones'. Any safetensors reader reads the result.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedward.errors import ProtocolError
from fedward.protocol.safetensors_header import SAFETENSORS_DTYPES

METADATA = {"format": "fedward-params", "version": "1"}
_CODE_OF_DTYPE = {np.dtype(name): code for code, name in SAFETENSORS_DTYPES.items()}
_WRITE_BYTES = 8 << 20  # one write call at most this large: the hash and the disk interleave


def safetensors_parts(
    params: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] = METADATA,
    labels: Mapping[str, str] | None = None,
) -> tuple[bytes, list[memoryview]]:
    """The file's head (length + header) and each tensor's bytes, in file order.
    ``labels``: a dtype label to write instead of the array's own, by tensor name (the
    bits of bfloat16 travel in uint16 arrays, labelled ``BF16``)."""
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    buffers: list[memoryview] = []
    offset = 0
    for name in sorted(params):
        array = np.asarray(params[name])
        if array.dtype == object:
            raise ProtocolError(f"parameter {name!r} has dtype object; only numeric arrays travel")
        little = array.dtype.newbyteorder("<")
        code = (labels or {}).get(name) or _CODE_OF_DTYPE.get(little)
        if code is None:
            raise ProtocolError(f"parameter {name!r} has dtype {array.dtype}, which cannot travel")
        data = np.ascontiguousarray(array, dtype=little)
        header[name] = {
            "dtype": code,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + data.nbytes],
        }
        offset += data.nbytes
        buffers.append(memoryview(data.reshape(-1).view(np.uint8)))  # type: ignore[arg-type]
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text, buffers


def params_to_bytes(params: Mapping[str, np.ndarray]) -> bytes:
    """The safetensors bytes of ``params`` (one copy of the tensors, into the result)."""
    head, buffers = safetensors_parts(params)
    return b"".join([head, *buffers])


def write_params(
    params: Mapping[str, np.ndarray], path: Path, *, durable: bool = False, hashed: bool = True
) -> str:
    """Write ``params`` to ``path`` (replacing it) straight from the arrays' buffers;
    returns the file's sha256 (its blob id), computed on the way ("" when not
    ``hashed``). ``durable`` fsyncs."""
    parts = safetensors_parts(params)  # before the file exists: it may refuse a dtype
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o644)
    try:
        sha256 = _write_parts(fd, *parts, hashed=hashed)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    return sha256


def write_params_to(fd: int, params: Mapping[str, np.ndarray]) -> None:
    """Write ``params`` at the position of the open file ``fd``."""
    _write_parts(fd, *safetensors_parts(params), hashed=False)


def _write_parts(fd: int, head: bytes, buffers: list[memoryview], *, hashed: bool) -> str:
    digest = hashlib.sha256() if hashed else None
    for piece in _pieces(head, buffers):
        if digest is not None:
            digest.update(piece)
        while piece:
            piece = piece[os.write(fd, piece) :]
    return digest.hexdigest() if digest is not None else ""


@dataclass(frozen=True)
class ParamsFile:
    """A parameters file written by this process, with its blob id, so that it can be
    uploaded as it is (``put_file(..., blob_id=...)``) while it has not changed."""

    path: Path
    sha256: str
    size: int
    mtime_ns: int

    @classmethod
    def write(cls, params: Mapping[str, np.ndarray], path: Path, *, durable: bool) -> ParamsFile:
        sha256 = write_params(params, path, durable=durable)
        info = Path(path).stat()
        return cls(Path(path), sha256, info.st_size, info.st_mtime_ns)

    def unchanged(self) -> bool:
        try:
            info = self.path.stat()
        except OSError:
            return False
        return (info.st_size, info.st_mtime_ns) == (self.size, self.mtime_ns)


def save_params(params: Mapping[str, np.ndarray], path: Path) -> None:
    write_params(params, Path(path), hashed=False)


def _pieces(head: bytes, buffers: list[memoryview]) -> Iterator[memoryview]:
    yield memoryview(head)
    for buffer in buffers:
        for start in range(0, len(buffer), _WRITE_BYTES):
            yield buffer[start : start + _WRITE_BYTES]
