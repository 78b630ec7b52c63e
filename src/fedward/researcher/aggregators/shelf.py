"""``ParamsShelf``: named parameter sets kept on disk, for state that grows with the nodes.

SCAFFOLD remembers one control variate per node; holding them in memory would cost
O(nodes x model). The shelf writes each set as a safetensors file (atomically) and reads
it back when that node is next asked, so the researcher's memory stays O(model).
Writes are atomic (rename) but not synced: durability is the checkpoints' job, and the
shelf is rewritten every round.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fedward.core.ids import validate_id
from fedward.core.params import Params
from fedward.protocol.params_wire import load_params, params_to_bytes


class ParamsShelf:
    def __init__(self, directory: Path | None = None, prefix: str = "fedward-shelf-") -> None:
        self._owned = directory is None
        self.directory = Path(directory) if directory else Path(tempfile.mkdtemp(prefix=prefix))
        self.directory.mkdir(parents=True, exist_ok=True)
        # A temporary shelf goes with its owner, even if nobody calls close().
        self._cleanup = (
            weakref.finalize(self, shutil.rmtree, self.directory, True) if self._owned else None
        )

    def _path(self, key: str) -> Path:
        return self.directory / f"{validate_id(key, kind='shelf key')}.safetensors"

    def put(self, key: str, params: Mapping[str, np.ndarray]) -> None:
        path = self._path(key)
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_bytes(params_to_bytes(params))
        partial.replace(path)

    def get(self, key: str) -> Params | None:
        path = self._path(key)
        return load_params(path) if path.exists() else None

    def entries(self) -> list[str]:
        return sorted(
            p.name.removesuffix(".safetensors") for p in self.directory.glob("*.safetensors")
        )

    def move_to(self, key: str, other: ParamsShelf) -> None:
        self._path(key).replace(other._path(key))

    def clear(self) -> None:
        for path in self.directory.glob("*.safetensors"):
            path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup()
        else:
            self.clear()
