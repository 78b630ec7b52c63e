"""Medical folders: one folder per subject, one sub-folder per modality, NIfTI images.

    root/
      subject-001/
        T1/  image.nii.gz
        T2/  image.nii
      subject-002/ ...

Each modality folder holds exactly one NIfTI image (``.nii`` or ``.nii.gz``); other files
there (JSON sidecars) are ignored. An optional demographics CSV has one row per subject,
keyed by its ``index_column`` (default: the first column). A subject counts as a sample
when it has every modality of the dataset and, when demographics are given, a row.

Inspection reads every NIfTI header and checks that the image data is all there (the
file size of ``.nii``; a streamed decompression, with its CRC check, of ``.nii.gz``), so
corrupt scans are found when the dataset is added. Headers are untrusted input: see
``nifti`` for how they are read without letting them size what is read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fedward.errors import DatasetError
from fedward.learning.datasets.csv_table import read_csv_records
from fedward.learning.datasets.dataset_type import (
    DatasetInfo,
    require_folder,
    visible_entries,
)
from fedward.learning.datasets.nifti import check_nifti_data, load_nifti, read_nifti_header

_PREVIEW_SUBJECTS = 20


def is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".nii", ".nii.gz"))


@dataclass(frozen=True)
class MedicalFolder:
    """The index of a medical-folder dataset; images are read on demand."""

    root: Path
    modalities: list[str]
    images: dict[str, dict[str, Path]]  # subject -> modality -> NIfTI file
    demographics_columns: list[str] = field(default_factory=list)
    demographics: dict[str, dict[str, str]] = field(default_factory=dict)
    demographics_dtypes: dict[str, str] = field(default_factory=dict)

    @property
    def subjects(self) -> list[str]:
        """Complete subjects: every modality, plus a demographics row when there are any."""
        return [
            subject
            for subject, found in self.images.items()
            if len(found) == len(self.modalities)
            and (not self.demographics_columns or subject in self.demographics)
        ]

    def load_image(self, subject: str, modality: str) -> np.ndarray:
        """The voxels of one scan as float32."""
        image = self.load_nifti(subject, modality)
        try:
            return np.asarray(image.get_fdata(dtype=np.float32))
        # nibabel reports short or damaged data through many exception types.
        except Exception as exc:
            shown = self.images[subject][modality].relative_to(self.root)
            raise DatasetError(f"cannot read the voxels of {shown} ({type(exc).__name__})") from exc

    def load_nifti(self, subject: str, modality: str) -> Any:
        """The nibabel image (header, affine, lazy data) of one scan."""
        try:
            path = self.images[subject][modality]
        except KeyError:
            raise DatasetError(f"subject {subject!r} has no {modality!r} image") from None
        return load_nifti(path, self.root)


def _scan_subject(subject_dir: Path, root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for modality_dir in visible_entries(subject_dir):
        if not modality_dir.is_dir():
            continue
        scans = [f for f in visible_entries(modality_dir) if f.is_file() and is_nifti(f)]
        if len(scans) > 1:
            raise DatasetError(
                f"{modality_dir.relative_to(root)} holds {len(scans)} NIfTI images",
                hint="keep exactly one image per modality folder",
            )
        if scans:
            found[modality_dir.name] = scans[0]
    return found


def _read_demographics(
    demographics: Path, index_column: str | int | None
) -> tuple[list[str], dict[str, dict[str, str]], dict[str, str]]:
    info, rows = read_csv_records(demographics)
    columns = info.columns
    if index_column is None:
        index = 0
    elif isinstance(index_column, int) and not isinstance(index_column, bool):
        if not 0 <= index_column < len(columns):
            raise DatasetError(f"index column {index_column} is out of range for {len(columns)}")
        index = index_column
    elif index_column in columns:
        index = columns.index(index_column)
    else:
        raise DatasetError(
            f"demographics file has no column {index_column!r}",
            hint="columns: " + ", ".join(columns[:20]),
        )
    table: dict[str, dict[str, str]] = {}
    for row in rows:
        key = row[index].strip()
        if key in table:
            raise DatasetError(
                f"subject {key!r} appears twice in the demographics index column {columns[index]!r}"
            )
        table[key] = dict(zip(columns, row, strict=True))
    return columns, table, dict(info.dtypes)


_ScanHeaders = dict[tuple[str, str], tuple[str, str]]  # (subject, modality) -> (dtype, shape)


def _index(
    path: Path,
    demographics: Path | str | None,
    index_column: str | int | None,
    check_data: bool,
) -> tuple[MedicalFolder, _ScanHeaders]:
    root = require_folder(Path(path), "medical-folder")
    subject_dirs = [entry for entry in visible_entries(root) if entry.is_dir()]
    if not subject_dirs:
        raise DatasetError(f"{root} is empty: expected one folder per subject")
    images: dict[str, dict[str, Path]] = {}
    headers: _ScanHeaders = {}
    for subject_dir in subject_dirs:
        images[subject_dir.name] = _scan_subject(subject_dir, root)
        for modality, scan in images[subject_dir.name].items():
            image = read_nifti_header(scan, root)
            if check_data:
                check_nifti_data(image, scan, root)
            headers[(subject_dir.name, modality)] = (
                str(image.header.get_data_dtype()),
                "x".join(str(n) for n in image.header.get_data_shape()),
            )
    modalities = sorted({m for found in images.values() for m in found})
    if not modalities:
        raise DatasetError(
            f"{root} holds no NIfTI image",
            hint="expected <subject>/<modality>/<image>.nii(.gz)",
        )
    folder = MedicalFolder(root, modalities, images)
    if demographics is not None:
        columns, table, dtypes = _read_demographics(Path(demographics), index_column)
        folder = MedicalFolder(root, modalities, images, columns, table, dtypes)
    if not folder.subjects:
        needs = " and a demographics row" if folder.demographics_columns else ""
        raise DatasetError(
            f"no subject of {root.name} has every modality ({', '.join(modalities)}){needs}"
        )
    return folder, headers


def index_medical_folder(
    path: Path,
    demographics: Path | str | None = None,
    index_column: str | int | None = None,
    check_data: bool = True,
) -> MedicalFolder:
    return _index(path, demographics, index_column, check_data)[0]


def inspect_medical_folder(
    path: Path, demographics: Path | str | None = None, index_column: str | int | None = None
) -> DatasetInfo:
    folder, headers = _index(path, demographics, index_column, check_data=True)
    complete = folder.subjects
    dtypes: dict[str, str] = {}
    shapes: dict[str, Counter[str]] = {m: Counter() for m in folder.modalities}
    for (_, modality), (dtype, shape) in headers.items():
        dtypes.setdefault(modality, dtype)
        shapes[modality][shape] += 1
    dtypes.update({f"demographics.{k}": v for k, v in folder.demographics_dtypes.items()})
    return DatasetInfo(
        shape=[len(complete), len(folder.modalities)],
        dtypes=dtypes,
        sample_count=len(complete),
        preview={
            "modalities": list(folder.modalities),
            "subject_count": len(folder.images),
            "subjects": [
                {
                    "subject": subject,
                    "modalities": sorted(found),
                    "demographics": subject in folder.demographics,
                }
                for subject, found in list(folder.images.items())[:_PREVIEW_SUBJECTS]
            ],
            "image_shapes": {m: dict(c) for m, c in shapes.items()},
            "incomplete_subjects": sorted(set(folder.images) - set(complete)),
            "demographics_columns": list(folder.demographics_columns),
            "demographics_without_folder": sorted(set(folder.demographics) - set(folder.images)),
        },
    )


def load_medical_folder(
    path: Path, demographics: Path | str | None = None, index_column: str | int | None = None
) -> MedicalFolder:
    """The folder's index (fast: headers only); read scans with ``load_image``."""
    return index_medical_folder(path, demographics, index_column, check_data=False)
