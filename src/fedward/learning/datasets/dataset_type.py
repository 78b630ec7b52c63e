"""What every dataset type offers: ``inspect`` (validate + describe) and ``load``.

``inspect`` runs when a node admin adds a dataset: it proves the content matches the
type and returns what the node stores and shows (shape, dtypes, sample count, a
preview). ``load`` runs inside training jobs. Both take the dataset path plus the
type's own options (for example the demographics file of a medical folder), which the
node keeps in the dataset's metadata.

Every problem with the content is a :class:`~fedward.errors.DatasetError` whose message
names the file (relative to the dataset when it is inside it) and what to fix.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedward.errors import DatasetError


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset described for the node registry; ``preview`` holds JSON-ready values only."""

    shape: list[int]
    dtypes: dict[str, str]
    sample_count: int
    preview: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetType:
    """One entry of ``DATASET_TYPES``; ``options`` names the keyword arguments it accepts."""

    name: str
    description: str
    inspect_fn: Callable[..., DatasetInfo]
    load_fn: Callable[..., Any]
    inspect_options: frozenset[str] = frozenset()
    load_options: frozenset[str] = frozenset()

    def inspect(self, path: Path, **options: Any) -> DatasetInfo:
        _refuse_unknown(self.name, "inspect", options, self.inspect_options)
        return self.inspect_fn(Path(path), **options)

    def load(self, path: Path, **options: Any) -> Any:
        _refuse_unknown(self.name, "load", options, self.load_options)
        return self.load_fn(Path(path), **options)


def _refuse_unknown(
    name: str, action: str, options: Mapping[str, Any], known: frozenset[str]
) -> None:
    unknown = sorted(set(options) - known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise DatasetError(
            f"{name} datasets do not accept option(s) {', '.join(unknown)} for {action}",
            hint=f"accepted: {accepted}",
        )


def require_file(path: Path, kind: str) -> Path:
    """``path`` as an existing, readable, non-empty file of ``kind`` (for messages)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"no such file: {path}", hint=f"give the path of a {kind} file")
    if path.is_dir():
        raise DatasetError(f"{path} is a folder, but a {kind} dataset is one file")
    if not os.access(path, os.R_OK):
        raise DatasetError(f"{path} is not readable by the node", hint="check its permissions")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path} is empty")
    return path


def require_folder(path: Path, kind: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"no such folder: {path}", hint=f"give the folder of a {kind} dataset")
    if not path.is_dir():
        raise DatasetError(f"{path} is a file, but a {kind} dataset is a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise DatasetError(f"{path} is not readable by the node", hint="check its permissions")
    return path


def visible_entries(folder: Path) -> Iterator[Path]:
    """Entries of ``folder`` in name order, without hidden files (``.DS_Store``, ``.git``)."""
    for entry in sorted(folder.iterdir()):
        if not entry.name.startswith("."):
            yield entry


def visible_files_below(folder: Path) -> Iterator[Path]:
    """Files anywhere below ``folder``, in path order, skipping hidden files and folders."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name


@contextlib.contextmanager
def dataset_paths_hidden(path: Path) -> Iterator[None]:
    """Inside training jobs: DatasetError messages with the dataset's location masked.

    Job failures are reported to the researcher, who must never learn where a node keeps
    its data.
    """
    try:
        yield
    except DatasetError as exc:
        raise DatasetError(
            _mask(exc.message, path), hint=_mask(exc.hint, path) if exc.hint else None
        ) from exc


def _mask(text: str, path: Path) -> str:
    for location in sorted({str(path), str(path.parent)}, key=len, reverse=True):
        if location not in ("/", "."):
            text = text.replace(location, "<dataset>")
    return text
