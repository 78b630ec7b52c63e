"""Dataset types a node can offer: validation, description and loading.

- ``dataset_type``    ``DatasetInfo`` (shape, dtypes, sample count, preview), ``DatasetType``
- ``csv_table``       ``csv``: ``inspect_csv`` -> ``CsvInfo``, ``load_csv_xy`` -> (X, y, names)
- ``images``          ``images``: one folder per class of PNG/JPEG, ``load_images``
- ``mnist``           ``mnist``: IDX image/label pairs, gzipped or not, ``load_mnist``
- ``medical_folder``  ``medical-folder``: subject/modality/NIfTI, demographics, ``MedicalFolder``

``DATASET_TYPES[name].inspect(path, **options)`` is what the node calls when a dataset is
added; ``.load(path, **options)`` is what plans call. Pillow and nibabel are imported only
by the types that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedward.errors import DatasetError
from fedward.learning.datasets.csv_table import (
    CsvInfo,
    inspect_csv,
    inspect_csv_dataset,
    load_csv_xy,
)
from fedward.learning.datasets.dataset_type import DatasetInfo, DatasetType
from fedward.learning.datasets.images import inspect_images, load_images
from fedward.learning.datasets.medical_folder import (
    MedicalFolder,
    inspect_medical_folder,
    load_medical_folder,
)
from fedward.learning.datasets.mnist import inspect_mnist, load_mnist

_MEDICAL_OPTIONS = frozenset({"demographics", "index_column"})

DATASET_TYPES: dict[str, DatasetType] = {
    kind.name: kind
    for kind in (
        DatasetType(
            name="csv",
            description="a CSV table, one sample per row (delimiter and header detected)",
            inspect_fn=inspect_csv_dataset,
            load_fn=load_csv_xy,
            load_options=frozenset({"target_column"}),
        ),
        DatasetType(
            name="images",
            description="a folder with one sub-folder of PNG/JPEG images per class",
            inspect_fn=inspect_images,
            load_fn=load_images,
            load_options=frozenset({"size", "mode"}),
        ),
        DatasetType(
            name="mnist",
            description="MNIST-style IDX files (images + labels), gzipped or not",
            inspect_fn=inspect_mnist,
            load_fn=load_mnist,
            load_options=frozenset({"split"}),
        ),
        DatasetType(
            name="medical-folder",
            description="one folder per subject, one sub-folder of NIfTI per modality",
            inspect_fn=inspect_medical_folder,
            load_fn=load_medical_folder,
            inspect_options=_MEDICAL_OPTIONS,
            load_options=_MEDICAL_OPTIONS,
        ),
    )
}


def dataset_type(name: str) -> DatasetType:
    """The registry entry for ``name``; DatasetError listing the known types otherwise."""
    try:
        return DATASET_TYPES[name]
    except KeyError:
        raise DatasetError(
            f"unknown dataset type {name!r}", hint="known types: " + ", ".join(DATASET_TYPES)
        ) from None


def inspect_dataset(name: str, path: Path, **options: Any) -> DatasetInfo:
    return dataset_type(name).inspect(Path(path), **options)


__all__ = [
    "DATASET_TYPES",
    "CsvInfo",
    "DatasetInfo",
    "DatasetType",
    "MedicalFolder",
    "dataset_type",
    "inspect_csv",
    "inspect_dataset",
    "load_csv_xy",
    "load_images",
    "load_medical_folder",
    "load_mnist",
]
