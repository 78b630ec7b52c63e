"""Parameters <-> safetensors, the only format parameters travel in.

safetensors is a flat header plus raw little-endian buffers: loading it never runs code,
unlike pickle, joblib or ``torch.load``. ``open_params`` reads the header only and gives a
lazy mapping, so an aggregator can fold a large update in one tensor at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load, save, save_file

from fedward.core.aggregation import Layout
from fedward.core.params import Params
from fedward.errors import ProtocolError

_METADATA = {"format": "fedward-params", "version": "1"}


def _contiguous(params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, value in params.items():
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ProtocolError(f"parameter {name!r} has dtype object; only numeric arrays travel")
        out[name] = np.ascontiguousarray(arr).reshape(arr.shape)  # keeps 0-d shapes
    return out


def params_to_bytes(params: Mapping[str, np.ndarray]) -> bytes:
    return save(_contiguous(params), metadata=_METADATA)


def params_from_bytes(data: bytes) -> Params:
    try:
        return dict(load(data))
    except (SafetensorError, ValueError, TypeError, KeyError) as exc:
        raise ProtocolError(f"parameters are not valid safetensors: {exc}") from exc


def save_params(params: Mapping[str, np.ndarray], path: Path) -> None:
    save_file(_contiguous(params), str(path), metadata=_METADATA)


def load_params(path: Path) -> Params:
    with open_params(path) as lazy:
        return {name: lazy[name] for name in lazy}


class LazyParams(Mapping[str, np.ndarray]):
    """Tensors of a safetensors file, read on access with ``pread``.

    The header is parsed and checked here (offsets inside the file, sizes that match
    shape x dtype) before any tensor is read. Tensors are read into fresh arrays, not
    memory-mapped: pages of a mapping stay resident until it is closed, which made the
    researcher hold a whole extra update while folding it in.
    """

    def __init__(self, path: Path) -> None:
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _invalid(f"cannot open the file: {exc.strerror}") from exc
        try:
            self._entries = _read_header(self._fd, os.fstat(self._fd).st_size)
        except BaseException:
            os.close(self._fd)
            raise
        self.layout: Layout = {n: (e.shape, e.dtype) for n, e in self._entries.items()}

    def __getitem__(self, name: str) -> np.ndarray:
        entry = self._entries[name]
        out = np.empty(entry.shape, dtype=entry.dtype)
        view = memoryview(out.reshape(-1).view(np.uint8))  # type: ignore[arg-type]
        done = 0
        while done < entry.nbytes:
            count = os.preadv(self._fd, [view[done:]], entry.offset + done)
            if count <= 0:
                raise ProtocolError(f"parameters file ended inside tensor {name!r}")
            done += count
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LazyParams:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SAFETENSORS_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
}
_MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit


@dataclass(frozen=True)
class _Entry:
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int
    nbytes: int


def _read_header(fd: int, file_size: int) -> dict[str, _Entry]:
    prefix = os.pread(fd, 8, 0)
    if len(prefix) != 8:
        raise _invalid("file too short")
    header_size = int.from_bytes(prefix, "little")
    if header_size > min(_MAX_HEADER_BYTES, file_size - 8):
        raise _invalid("impossible header size")
    try:
        header = json.loads(os.pread(fd, header_size, 8))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid("malformed header") from exc
    if not isinstance(header, dict):
        raise _invalid("malformed header")
    data_start = 8 + header_size
    entries: dict[str, _Entry] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        entries[name] = _entry(name, spec, data_start, file_size)
    # As the format requires: the data buffer is covered exactly, no holes, no overlaps.
    position = data_start
    for entry in sorted(entries.values(), key=lambda e: e.offset):
        if entry.offset != position:
            raise _invalid("tensor data has holes or overlaps")
        position += entry.nbytes
    if position != file_size:
        raise _invalid("trailing bytes after the last tensor")
    return entries


def _invalid(reason: str) -> ProtocolError:
    return ProtocolError(f"parameters are not valid safetensors: {reason}")


def _entry(name: str, spec: Any, data_start: int, file_size: int) -> _Entry:
    try:
        dtype = np.dtype(_SAFETENSORS_DTYPES[str(spec["dtype"]).upper()])
        shape = tuple(int(d) for d in spec["shape"])
        begin, end = (int(v) for v in spec["data_offsets"])
    except KeyError as exc:
        raise _invalid(f"tensor {name!r}: unsupported dtype or missing field {exc}") from exc
    except (TypeError, ValueError) as exc:
        raise _invalid(f"tensor {name!r} has a malformed header entry") from exc
    if any(d < 0 for d in shape):
        raise _invalid(f"tensor {name!r} has a negative dimension")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not 0 <= begin <= end or end - begin != nbytes or data_start + end > file_size:
        raise _invalid(f"tensor {name!r} lies outside the file or has the wrong size")
    return _Entry(dtype, shape, data_start + begin, nbytes)


def open_params(path: Path) -> LazyParams:
    return LazyParams(path)
