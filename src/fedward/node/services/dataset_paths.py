"""Where a dataset may live: an existing, readable path, inside the data root when one is set.

Paths are resolved (symlinks followed, ``..`` collapsed) before the containment check,
so neither ``root/../etc`` nor a symlink inside the root that points outside it passes.
The resolved path is what gets stored, and it is checked again before each use because
the file system may have changed since.
"""

from __future__ import annotations

import os
from pathlib import Path

from fedward.errors import DatasetError


def resolve_data_root(data_root: Path | None) -> Path | None:
    if data_root is None:
        return None
    try:
        return Path(data_root).expanduser().resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise DatasetError(
            f"the data root {data_root} does not exist",
            hint="create it or fix data_root in the node configuration",
        ) from exc


def resolve_dataset_path(path: Path | str, data_root: Path | None) -> Path:
    """The canonical form of ``path``, or ``DatasetError`` saying why it cannot be used."""
    given = Path(path).expanduser()
    if "\x00" in str(given):
        raise DatasetError("dataset path contains a NUL character")
    try:
        resolved = given.resolve(strict=True)
    except FileNotFoundError as exc:
        raise DatasetError(f"dataset path {given} does not exist") from exc
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise DatasetError(f"dataset path {given} cannot be resolved: {exc}") from exc
    root = resolve_data_root(data_root)
    if root is not None and not resolved.is_relative_to(root):
        raise DatasetError(
            f"dataset path {given} is outside the data root {root}",
            hint="move or link the data under the data root (symlinks are followed)",
        )
    wanted = os.R_OK | os.X_OK if resolved.is_dir() else os.R_OK
    if not os.access(resolved, wanted):
        raise DatasetError(f"dataset path {given} is not readable by this node")
    return resolved
