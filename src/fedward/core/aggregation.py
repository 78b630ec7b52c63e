"""Streaming weighted averaging: the arithmetic of FedAvg.

``WeightedMean`` folds updates in one tensor at a time, so the researcher holds one
running sum per parameter (O(model) memory) whatever the number of nodes, and never a
whole extra update when the caller streams tensors from a file. Floating parameters are
summed in their own precision (at least float32) in fixed-size chunks, so no temporary
the size of a tensor is ever made; integer parameters are summed in float64.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol, runtime_checkable

import numpy as np

from fedward.core.params import Params
from fedward.errors import ValidationError

# Elements per multiply-add step. Small enough that the scratch stays in the CPU cache and
# is reused from one update to the next: fresh memory costs a page fault per 4 KiB on
# first touch, which on a virtual machine made folding a 4 MB update take 5 ms, not 1.
_CHUNK = 1 << 16


@runtime_checkable
class TensorChunks(Protocol):
    """Tensors that can be read piece by piece (``protocol.params_wire.LazyParams``)."""

    def chunks(self, name: str) -> Iterator[np.ndarray]:
        """Tensor ``name`` as consecutive flat pieces, each valid until the next."""
        ...


def axpy(
    acc: np.ndarray, value: np.ndarray, weight: float, scratch: np.ndarray | None = None
) -> None:
    """``acc += weight * value`` in place, in chunks, without a full-size temporary;
    ``scratch``: a reusable 1-D array of ``acc``'s dtype, at least one chunk long."""
    flat_acc = acc.reshape(-1)
    flat_val = np.ascontiguousarray(value).reshape(-1)
    if scratch is None or scratch.dtype != acc.dtype or scratch.size < _CHUNK:
        scratch = np.empty(min(_CHUNK, flat_acc.size), dtype=acc.dtype)
    for start in range(0, flat_acc.size, _CHUNK):
        stop = min(start + _CHUNK, flat_acc.size)
        tmp = scratch[: stop - start]
        np.multiply(flat_val[start:stop], weight, out=tmp, casting="unsafe")
        flat_acc[start:stop] += tmp


def _accumulator_dtype(dtype: np.dtype) -> np.dtype:
    if np.issubdtype(dtype, np.floating):
        return np.result_type(dtype, np.float32)
    return np.dtype(np.float64)


def _zeros(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """``np.zeros`` through ``malloc``: ``calloc`` maps fresh zero pages for a large array,
    one page fault per 4 KiB when it is first written, while memory freed by the round
    before (the last global model) is reused here as it is."""
    out = np.empty(shape, dtype=dtype)
    out.fill(0)
    return out


Layout = dict[str, tuple[tuple[int, ...], np.dtype]]


def layout_of(params: Mapping[str, np.ndarray]) -> Layout:
    return {name: (tuple(a.shape), a.dtype) for name, a in params.items()}


def check_layout(expected: Layout, got: Layout, what: str = "parameter") -> None:
    """ValidationError unless ``got`` has exactly the names, shapes and dtypes of ``expected``."""
    if got.keys() != expected.keys():
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        raise ValidationError(
            f"{what} names differ: missing {_names(missing)}, unexpected {_names(extra)}"
        )
    for name, (shape, dtype) in expected.items():
        got_shape, got_dtype = got[name]
        if tuple(got_shape) != tuple(shape) or np.dtype(got_dtype) != np.dtype(dtype):
            raise ValidationError(
                f"{what} {name!r} is {np.dtype(got_dtype)}{list(got_shape)}, "
                f"expected {np.dtype(dtype)}{list(shape)}"
            )


def _names(names: list[str]) -> str:
    # A peer chooses these names: show a few, each cut short, never all of them.
    shown = [name if len(name) <= 60 else name[:60] + "..." for name in names[:5]]
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return f"{shown}{more}"


class WeightedMean:
    """Accumulate ``sum(w_i * x_i) / sum(w_i)`` parameter by parameter.

    ``params`` given to ``add`` may be a lazy mapping (tensors read from a file on
    access); pass its ``layout`` then, so the whole update is checked before any of it
    is folded in and a bad update leaves the running sums untouched.
    """

    def __init__(self, layout: Layout | None = None) -> None:
        """``layout``: the names, shapes and dtypes every update must have (normally the
        global model's). Without it the first update sets it, so an odd first update
        would make every honest one look wrong."""
        self._sums: dict[str, np.ndarray] = {}
        self._layout: Layout = {}
        self._total_weight = 0.0
        self.count = 0
        self._consumed = False
        self._scratch: dict[np.dtype, np.ndarray] = {}
        if layout is not None:
            self._start(layout)

    def _start(self, layout: Layout) -> None:
        self._layout = {n: (tuple(shape), np.dtype(dt)) for n, (shape, dt) in layout.items()}
        self._sums = {
            n: _zeros(shape, _accumulator_dtype(dt)) for n, (shape, dt) in self._layout.items()
        }

    @property
    def total_weight(self) -> float:
        return self._total_weight

    def add(
        self, params: Mapping[str, np.ndarray], weight: float, layout: Layout | None = None
    ) -> None:
        if not np.isfinite(weight) or weight <= 0:
            raise ValidationError(f"aggregation weight must be positive, got {weight}")
        if self._consumed:
            raise ValidationError("this mean was already taken; start a new WeightedMean")
        layout = layout if layout is not None else layout_of(params)
        if self._sums:
            check_layout(self._layout, layout)
        else:
            self._start(layout)
        for name in self._layout:
            if isinstance(params, TensorChunks):  # read from a file: no tensor-sized array
                self._fold_chunks(name, params.chunks(name), weight)
            else:
                axpy(self._sums[name], params[name], weight, self._scratch_for(name))
        self._total_weight += float(weight)
        self.count += 1

    def _scratch_for(self, name: str) -> np.ndarray:
        dtype = self._sums[name].dtype
        scratch = self._scratch.get(dtype)
        if scratch is None:
            scratch = self._scratch[dtype] = np.empty(_CHUNK, dtype=dtype)
        return scratch

    def _fold_chunks(self, name: str, pieces: Iterator[np.ndarray], weight: float) -> None:
        flat = self._sums[name].reshape(-1)
        scratch, start = self._scratch_for(name), 0
        for piece in pieces:
            stop = start + piece.size
            if stop > flat.size:
                raise ValidationError(f"tensor {name!r} is longer than its layout says")
            axpy(flat[start:stop], piece, weight, scratch)
            start = stop
        if start != flat.size:
            raise ValidationError(f"tensor {name!r} is shorter than its layout says")

    def result(self) -> Params:
        if not self.count or self._consumed:
            raise ValidationError("no update to aggregate (or the mean was already taken)")
        # In place: a second full-size array here would set the researcher's peak memory.
        # The mean cannot be folded into further; ``result`` ends this accumulator.
        out: Params = {}
        for name, acc in self._sums.items():
            _, dtype = self._layout[name]
            acc /= self._total_weight
            if np.issubdtype(dtype, np.integer):
                np.rint(acc, out=acc)
            out[name] = acc.astype(dtype, copy=False)
        self._sums = {}
        self._consumed = True
        return out
