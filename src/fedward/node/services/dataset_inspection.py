"""Read a dataset's content at add time: shape, dtypes, sample count and a preview.

The readers live in ``fedward.learning.datasets`` (``DATASET_TYPES``: one entry per data
type, whose ``inspect(path, **options)`` raises ``DatasetError`` on bad content). The
services see them through ``DatasetInspector`` so tests can give a fake one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from fedward.errors import DatasetError
from fedward.learning.datasets import DATASET_TYPES, DatasetInfo

#: What an inspector reports: shape, dtypes, sample count, JSON-ready preview.
DatasetInspection = DatasetInfo


class DatasetInspector(Protocol):
    def data_types(self) -> list[str]:
        """Names of the data types this inspector can read."""

    def inspect(self, data_type: str, path: Path, options: Mapping[str, Any]) -> DatasetInspection:
        """Read ``path`` as ``data_type``; ``DatasetError`` when the content does not fit."""


class LearningInspector:
    """The dataset types of ``fedward.learning.datasets``."""

    def data_types(self) -> list[str]:
        return sorted(DATASET_TYPES)

    def inspect(self, data_type: str, path: Path, options: Mapping[str, Any]) -> DatasetInspection:
        if data_type not in DATASET_TYPES:
            raise DatasetError(f"unknown dataset type {data_type!r}")
        found = DATASET_TYPES[data_type].inspect(path, **options)
        return DatasetInspection(
            shape=list(found.shape),
            dtypes=dict(found.dtypes),
            sample_count=found.sample_count,
            preview=dict(found.preview),
        )
