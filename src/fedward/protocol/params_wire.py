"""Parameters <-> safetensors, the only format parameters travel in.

safetensors is a flat header plus raw little-endian buffers: loading it never runs code,
unlike pickle, joblib or ``torch.load``. ``open_params`` reads the header only (checked
by ``safetensors_header``) and gives a lazy mapping, so an aggregator can fold a large
update in one tensor at a time.

Updates come from nodes the researcher does not control. ``open_update`` is how one is
opened: the header must describe exactly the global model's layout, and
``LazyParams.check_values`` reads every value once, a chunk at a time, refusing NaN,
infinities and magnitudes past ``MAX_ABS_VALUE``. ``params_file_bound`` says how large a
file of a given layout can be, so its download can be capped before it starts.
"""

from __future__ import annotations

import json
import math
import mmap
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load

from fedward.core.aggregation import Layout, check_layout
from fedward.core.params import Params
from fedward.errors import ProtocolError
from fedward.protocol.params_writer import params_to_bytes as params_to_bytes
from fedward.protocol.params_writer import save_params as save_params
from fedward.protocol.params_writer import write_params as write_params
from fedward.protocol.safetensors_header import TensorEntry, invalid, read_header

#: The largest magnitude an update may hold. Beyond it a value only serves to overflow
#: the aggregation: sample weights go up to 2**53, and 2**60 * 2**53 summed over
#: thousands of nodes still fits float32; squared (FedOpt, Krum) it fits float64; and
#: integers this size survive the float64 mean's round trip. No trained weight gets near.
MAX_ABS_VALUE = 2**60
_SCAN_BYTES = 1 << 20  # a value check holds one chunk this size, whatever the tensor


def params_from_bytes(data: bytes) -> Params:
    try:
        return dict(load(data))
    except (SafetensorError, ValueError, TypeError, KeyError) as exc:
        raise ProtocolError(f"parameters are not valid safetensors: {exc}") from exc


def load_params(path: Path) -> Params:
    with open_params(path) as lazy:
        return {name: lazy[name] for name in lazy}


def map_params(path: Path) -> Params:
    """The tensors of a safetensors file as copy-on-write views of a private mapping:
    nothing is read or copied up front, each page comes from the page cache when touched,
    and writing to an array copies only that page (the file never changes). For the job
    worker, whose input was just written by the node: reading it into fresh arrays cost
    a copy plus a first touch of every page (~4 us per 4 KiB page on a VM). The header
    is checked as ``open_params`` checks it; the mapping lives as long as any array."""
    with open_params(path) as lazy:
        entries = lazy.entries
        if not entries:
            return {}
        # The arrays keep the mapping (not the file descriptor) alive.
        whole = np.frombuffer(mmap.mmap(lazy.fileno(), 0, flags=mmap.MAP_PRIVATE), np.uint8)
    return {
        name: whole[entry.offset : entry.offset + entry.nbytes]
        .view(entry.dtype)
        .reshape(entry.shape)
        for name, entry in entries.items()
    }


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
            raise invalid(f"cannot open the file: {exc.strerror}") from exc
        try:
            self._entries = read_header(self._fd, os.fstat(self._fd).st_size)
        except BaseException:
            os.close(self._fd)
            raise
        self.layout: Layout = {n: (e.shape, e.dtype) for n, e in self._entries.items()}
        self._buffer: np.ndarray | None = None

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

    @property
    def entries(self) -> Mapping[str, TensorEntry]:
        """Where each tensor lies in the file (checked against the file's size)."""
        return self._entries

    def fileno(self) -> int:
        return self._fd

    def check_values(self, max_abs: int = MAX_ABS_VALUE) -> None:
        """ProtocolError naming the first tensor with a NaN, an infinity or a value past
        ``max_abs``. Reads the data once, a chunk at a time: memory O(chunk)."""
        for name in self._entries:
            for piece in self.chunks(name):
                _check_chunk(name, piece, max_abs)

    def chunks(self, name: str) -> Iterator[np.ndarray]:
        """Tensor ``name`` as consecutive flat pieces read into one buffer, reused for
        every piece of every tensor of this file (each piece is valid until the next)."""
        entry = self._entries[name]
        if self._buffer is None:
            self._buffer = np.empty(_SCAN_BYTES, dtype=np.uint8)
        buffer = self._buffer
        step = _SCAN_BYTES - _SCAN_BYTES % entry.dtype.itemsize
        for start in range(0, entry.nbytes, step):
            count = min(step, entry.nbytes - start)
            view = memoryview(buffer[:count])  # type: ignore[arg-type]
            if os.preadv(self._fd, [view], entry.offset + start) != count:
                raise ProtocolError(f"parameters file ended inside tensor {name!r}")
            yield buffer[:count].view(entry.dtype)

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


def _check_chunk(name: str, values: np.ndarray, max_abs: int) -> None:
    if values.dtype == np.bool_:
        return
    # min and max need no temporary array, and NaN or an infinity shows in one of them.
    # As Python numbers they compare exactly with max_abs (numpy would cast it to float16).
    low, high = values.min().item(), values.max().item()
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ProtocolError(f"non-finite values (NaN or infinity) in tensor {name!r}")
    if low < -max_abs or high > max_abs:
        raise ProtocolError(f"values beyond +/-{float(max_abs):.3g} in tensor {name!r}")


def open_params(path: Path) -> LazyParams:
    return LazyParams(path)


def open_update(path: Path, expected: Layout, what: str = "parameter") -> LazyParams:
    """An update from a peer, opened only if its header has exactly the ``expected``
    names, shapes and dtypes (ValidationError) and its values pass ``check_values``
    (ProtocolError)."""
    params = LazyParams(path)
    try:
        check_layout(expected, params.layout, what)
        params.check_values()
    except BaseException:
        params.close()
        raise
    return params


def params_file_bound(layout: Layout) -> int:
    """The most bytes a safetensors file of ``layout`` can take, headers written by any
    honest writer included: the cap for downloading one."""
    data = sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in layout.values())
    # Per tensor: its quoted name, the field names, a dtype, up to 21 characters per
    # dimension and per offset. Doubled, plus room for metadata and padding.
    header = sum(
        len(json.dumps(name)) + 96 + 21 * len(shape) for name, (shape, _) in layout.items()
    )
    return 8 + data + 2 * header + (64 << 10)
