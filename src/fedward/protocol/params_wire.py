"""Parameters <-> safetensors, the only format parameters travel in.

safetensors is a flat header plus raw little-endian buffers: loading it never runs code,
unlike pickle, joblib or ``torch.load``. ``open_params`` reads the header only and gives a
lazy mapping, so an aggregator can fold a large update in one tensor at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open
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
    """Tensors of a safetensors file, read on access."""

    def __init__(self, path: Path) -> None:
        try:
            self._handle: Any = safe_open(str(path), framework="numpy")
            self._file = self._handle.__enter__()
            self._names = list(self._file.keys())
            self.layout: Layout = {}
            for name in self._names:
                sl = self._file.get_slice(name)
                self.layout[name] = (tuple(sl.get_shape()), np.dtype(_dtype(sl.get_dtype())))
        except (SafetensorError, ValueError, TypeError, OSError) as exc:
            raise ProtocolError(f"parameters are not valid safetensors: {exc}") from exc

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._file.get_tensor(name)
        except SafetensorError as exc:
            raise KeyError(name) from exc

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def close(self) -> None:
        self._handle.__exit__(None, None, None)

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


def _dtype(name: str) -> str:
    try:
        return _SAFETENSORS_DTYPES[name.upper()]
    except KeyError as exc:
        raise ProtocolError(f"unsupported tensor dtype {name}") from exc


def open_params(path: Path) -> LazyParams:
    return LazyParams(path)
