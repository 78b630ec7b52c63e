"""``UpdateSpool``: every update of a round, for rules that cannot stream.

Coordinate-wise median, trimmed mean and Krum need all updates at once. The spool keeps
each update as one flat float64 row (its parameters laid end to end in the global
model's order); rows live in memory while they fit ``memory_limit_bytes`` and in a
memory-mapped file in a scratch folder beyond that. Readers take the rows a slice of
coordinates at a time (``chunks``), so the working memory is O(nodes x chunk), not
O(nodes x model), however large the model.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from fedward.core.aggregation import Layout
from fedward.core.params import Params
from fedward.errors import ValidationError

CHUNK = 1 << 16  # coordinates per slice handed to a rule


class UpdateSpool:
    def __init__(
        self,
        layout: Layout,
        *,
        memory_limit_bytes: int = 64 << 20,
        directory: Path | None = None,
    ) -> None:
        self.layout = {n: (tuple(shape), np.dtype(dt)) for n, (shape, dt) in layout.items()}
        self._offsets: dict[str, tuple[int, int]] = {}
        offset = 0
        for name, (shape, _) in self.layout.items():
            size = int(np.prod(shape, dtype=np.int64))
            self._offsets[name] = (offset, offset + size)
            offset += size
        self.size = offset
        self._limit = memory_limit_bytes
        self._parent = directory
        self._scratch: Path | None = None
        self._rows: list[np.ndarray] = []
        self.node_ids: list[str] = []

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def on_disk(self) -> bool:
        return self._scratch is not None

    def _new_row(self) -> np.ndarray:
        if (len(self._rows) + 1) * self.size * 8 <= self._limit:
            return np.empty(self.size, dtype=np.float64)
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="fedward-spool-", dir=self._parent))
        path = self._scratch / f"row-{len(self._rows)}.f64"
        return np.memmap(path, dtype=np.float64, mode="w+", shape=(max(self.size, 1),))[: self.size]

    def add(self, node_id: str, update: Mapping[str, np.ndarray]) -> None:
        """Copy one update in (tensor by tensor); ValidationError if it holds NaN or inf."""
        row = self._new_row()
        for name, (start, stop) in self._offsets.items():
            value = np.asarray(update[name])
            if value.size != stop - start:
                raise ValidationError(
                    f"update {name!r} has {value.size} values, expected {stop - start}"
                )
            row[start:stop] = value.reshape(-1)
            if not np.all(np.isfinite(row[start:stop])):
                raise ValidationError(f"update {name!r} holds NaN or infinite values")
        self._rows.append(row)
        self.node_ids.append(node_id)

    def drop_last(self) -> None:
        """Forget the last row added (an update refused after it was copied in)."""
        self._rows.pop()
        self.node_ids.pop()

    def chunks(self, chunk: int = CHUNK) -> Iterator[tuple[int, int, np.ndarray]]:
        """(start, stop, rows x (stop - start) matrix) over every coordinate."""
        for start in range(0, self.size, chunk):
            stop = min(start + chunk, self.size)
            yield start, stop, np.stack([row[start:stop] for row in self._rows])

    def row(self, index: int) -> np.ndarray:
        return self._rows[index]

    def unflatten(self, flat: np.ndarray) -> Params:
        """Parameters from one flat vector, in their own shapes and dtypes (integers
        rounded to the nearest, not truncated: a median of 1 and 2 counts 2, not 1)."""
        out: Params = {}
        for name, (start, stop) in self._offsets.items():
            shape, dtype = self.layout[name]
            values = np.asarray(flat[start:stop]).reshape(shape)
            if not np.issubdtype(dtype, np.floating):
                values = np.rint(values)
            out[name] = values.astype(dtype)
        return out

    def close(self) -> None:
        self._rows.clear()
        self.node_ids.clear()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
