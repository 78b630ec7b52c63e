"""The header of a safetensors file, read as what it is: input from a peer we do not trust.

A safetensors file is an 8-byte little-endian header length, a JSON object naming each
tensor's dtype, shape and byte range, and the raw buffers. Every number in it is the
sender's claim. This module checks the claims before anything is allocated or read:

- the header is a JSON object of at most ``MAX_HEADER_BYTES``, inside the file, with no
  name given twice; ``__metadata__``, when present, maps strings to strings;
- a tensor entry has exactly a known dtype string, a shape of at most ``MAX_DIMS``
  non-negative ints, and two int byte offsets (``true``, ``1.5`` or ``"3"`` are not ints);
- sizes are computed with Python ints, never a fixed-width product that can wrap around,
  and a tensor's byte range must equal shape x itemsize and lie inside the file;
- the buffers cover the data section exactly: no holes, no overlaps, no trailing bytes.

So a header can only describe tensors whose bytes are really in the file, and reading
one never asks numpy for more memory than the file holds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedward.errors import ProtocolError

SAFETENSORS_DTYPES = {
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
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit
#: More dimensions than any model uses, and fewer than numpy's own limit (64).
MAX_DIMS = 32
#: Bound on shape x itemsize with zero dimensions left out. A tensor with a zero
#: dimension holds no bytes, so the file size cannot bound its other dimensions; numpy
#: refuses shapes whose nominal size passes 2**63, and we stay well below that.
MAX_NOMINAL_BYTES = 1 << 48
_ENTRY_FIELDS = frozenset({"dtype", "shape", "data_offsets"})


@dataclass(frozen=True)
class TensorEntry:
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int  # from the start of the file
    nbytes: int


def invalid(reason: str) -> ProtocolError:
    return ProtocolError(f"parameters are not valid safetensors: {reason}")


class _DuplicateName(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; a second entry for a tensor name
    # would let two readers of the same header disagree on what the file holds.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateName(key)
        out[key] = value
    return out


def read_header(
    fd: int, file_size: int, extra_dtypes: Mapping[str, str] | None = None
) -> dict[str, TensorEntry]:
    """The tensors of the safetensors file open as ``fd``, checked as described above.
    ``extra_dtypes``: dtype names a caller reads as another numpy dtype (update codecs
    read ``BF16`` bits as uint16); never given for parameters files."""
    header, data_start = _parse(fd, file_size)
    dtypes = {**SAFETENSORS_DTYPES, **(extra_dtypes or {})}
    entries: dict[str, TensorEntry] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        entries[name] = _entry(name, spec, data_start, file_size, dtypes)
    # As the format requires: the data buffer is covered exactly, no holes, no overlaps.
    position = data_start
    for entry in sorted(entries.values(), key=lambda e: e.offset):
        if entry.offset != position:
            raise invalid("tensor data has holes or overlaps")
        position += entry.nbytes
    if position != file_size:
        raise invalid("trailing bytes after the last tensor")
    return entries


def read_metadata(fd: int, file_size: int) -> dict[str, str]:
    """The ``__metadata__`` of the safetensors file open as ``fd`` (checked strings)."""
    header, _ = _parse(fd, file_size)
    return dict(header.get("__metadata__", {}))


def _parse(fd: int, file_size: int) -> tuple[dict[str, Any], int]:
    prefix = os.pread(fd, 8, 0)
    if len(prefix) != 8:
        raise invalid("file too short")
    header_size = int.from_bytes(prefix, "little")
    if header_size > min(MAX_HEADER_BYTES, file_size - 8):
        raise invalid(f"header size {header_size} is larger than the file allows")
    raw = os.pread(fd, header_size, 8)
    if len(raw) != header_size:
        raise invalid("file ended inside the header")
    try:
        header = json.loads(raw, object_pairs_hook=_unique_keys)
    except _DuplicateName as exc:
        raise invalid(f"the header names {str(exc)[:80]!r} twice") from None
    # RecursionError: a header of deeply nested lists; ValueError also covers integers
    # too long to parse.
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise invalid("malformed header") from exc
    if not isinstance(header, dict):
        raise invalid("the header is not a JSON object")
    _check_metadata(header.get("__metadata__", {}))
    return header, 8 + header_size


def _check_metadata(metadata: Any) -> None:
    if not isinstance(metadata, dict) or not all(
        isinstance(value, str) for value in metadata.values()
    ):
        raise invalid("__metadata__ must map strings to strings")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entry(
    name: str, spec: Any, data_start: int, file_size: int, dtypes: Mapping[str, str]
) -> TensorEntry:
    shown = repr(name[:80])
    if not isinstance(spec, dict) or set(spec) != _ENTRY_FIELDS:
        raise invalid(f"tensor {shown} must have exactly the fields dtype, shape, data_offsets")
    dtype_name, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if not isinstance(dtype_name, str) or dtype_name.upper() not in dtypes:
        raise invalid(f"tensor {shown} has an unsupported dtype {str(dtype_name)[:20]!r}")
    dtype = np.dtype(dtypes[dtype_name.upper()])
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise invalid(f"tensor {shown}: the shape must be a list of at most {MAX_DIMS} ints")
    if not all(_is_int(d) and d >= 0 for d in shape):
        raise invalid(f"tensor {shown}: every dimension must be a non-negative int")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_int, offsets))):
        raise invalid(f"tensor {shown}: data_offsets must be two ints")
    begin, end = offsets
    nbytes = _tensor_bytes(shown, shape, dtype.itemsize)
    if not 0 <= begin <= end or end - begin != nbytes or data_start + end > file_size:
        raise invalid(f"tensor {shown} lies outside the file or has the wrong size")
    return TensorEntry(dtype, tuple(shape), data_start + begin, nbytes)


def _tensor_bytes(shown: str, shape: list[int], itemsize: int) -> int:
    nominal = itemsize
    for dim in shape:
        if dim:
            nominal *= dim
            if nominal > MAX_NOMINAL_BYTES:  # stop early: no huge integers either
                raise invalid(f"tensor {shown} claims an impossible size")
    return 0 if 0 in shape else nominal
