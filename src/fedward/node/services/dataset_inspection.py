"""Read a dataset's content at add time: shape, dtypes, sample count and a preview.

The readers themselves live in ``fedward.learning.datasets`` (``DATASET_TYPES``, one
entry per data type, each with ``inspect(path)`` that raises ``DatasetError`` on bad
content). Until that module is installed, a built-in CSV reader keeps ``csv`` working so
the registry is usable on its own.
"""

from __future__ import annotations

import csv
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fedward.errors import DatasetError

_PREVIEW_ROWS = 5
_SNIFF_BYTES = 64 * 1024


@dataclass(frozen=True)
class DatasetInspection:
    shape: list[int]
    dtypes: dict[str, str]
    sample_count: int
    preview: dict[str, Any] = field(default_factory=dict)


class DatasetInspector(Protocol):
    def data_types(self) -> list[str]:
        """Names of the data types this inspector can read."""

    def inspect(self, data_type: str, path: Path, options: Mapping[str, Any]) -> DatasetInspection:
        """Read ``path`` as ``data_type``; ``DatasetError`` when the content does not fit."""


class LearningInspector:
    """Delegates to ``fedward.learning.datasets.DATASET_TYPES``."""

    def __init__(self, registry: Mapping[str, Any]) -> None:
        self._registry = registry

    def data_types(self) -> list[str]:
        return sorted(self._registry)

    def inspect(self, data_type: str, path: Path, options: Mapping[str, Any]) -> DatasetInspection:
        found = self._registry[data_type].inspect(path, **options)
        return DatasetInspection(
            shape=[int(size) for size in _field(found, "shape")],
            dtypes={str(k): str(v) for k, v in dict(_field(found, "dtypes")).items()},
            sample_count=int(_field(found, "sample_count")),
            preview=dict(_field(found, "preview") or {}),
        )


def _field(found: Any, name: str) -> Any:
    if isinstance(found, Mapping):
        return found[name]
    return getattr(found, name)


class CsvOnlyInspector:
    """Reads ``csv`` only: delimiter sniffed, header required, column kinds guessed."""

    def data_types(self) -> list[str]:
        return ["csv"]

    def inspect(self, data_type: str, path: Path, options: Mapping[str, Any]) -> DatasetInspection:
        if options:
            raise DatasetError(f"csv datasets take no options, got {sorted(options)}")
        if path.is_dir():
            raise DatasetError(f"{path} is a folder, not a CSV file")
        try:
            with path.open(newline="", encoding="utf-8") as handle:
                sample = handle.read(_SNIFF_BYTES)
                if not sample.strip():
                    raise DatasetError(f"{path} is empty")
                try:
                    dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
                except csv.Error:
                    dialect = csv.excel
                handle.seek(0)
                reader = csv.reader(handle, dialect)
                header = next(reader)
                columns: list[list[str]] = [[] for _ in header]
                rows = 0
                preview_rows: list[list[str]] = []
                for row in reader:
                    if not row:
                        continue
                    if len(row) != len(header):
                        raise DatasetError(
                            f"{path}: line {reader.line_num} has {len(row)} fields, "
                            f"the header has {len(header)}"
                        )
                    rows += 1
                    if len(preview_rows) < _PREVIEW_ROWS:
                        preview_rows.append(row)
                    for values, value in zip(columns, row, strict=True):
                        values.append(value)
        except UnicodeDecodeError as exc:
            raise DatasetError(f"{path} is not a UTF-8 text (CSV) file") from exc
        except csv.Error as exc:
            raise DatasetError(f"{path} is not a valid CSV file: {exc}") from exc
        except OSError as exc:
            raise DatasetError(f"cannot read {path}: {exc.strerror}") from exc
        if rows == 0:
            raise DatasetError(f"{path} has a header but no rows")
        return DatasetInspection(
            shape=[rows, len(header)],
            dtypes={
                name: _column_kind(values) for name, values in zip(header, columns, strict=True)
            },
            sample_count=rows,
            preview={"columns": header, "rows": preview_rows},
        )


def _column_kind(values: list[str]) -> str:
    for kind, parse in (("int64", int), ("float64", float)):
        try:
            for value in values:
                parse(value)
        except ValueError:
            continue
        return kind
    return "object"


def default_inspector() -> DatasetInspector:
    """The learning package's readers when installed, else the built-in CSV reader."""
    try:
        module = importlib.import_module("fedward.learning.datasets")
    except ModuleNotFoundError as exc:
        if exc.name != "fedward.learning.datasets":
            raise
        return CsvOnlyInspector()
    return LearningInspector(module.DATASET_TYPES)
