from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from fedward.errors import DatasetError
from fedward.learning.datasets import DATASET_TYPES, load_medical_folder

SHAPE = (6, 5, 4)


def save_scan(path: Path, seed: int = 0, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    voxels = np.random.default_rng(seed).random(shape).astype(np.float32)
    nib.save(nib.Nifti1Image(voxels, affine=np.eye(4)), path)
    return voxels


@pytest.fixture
def medical_root(tmp_path: Path) -> Path:
    root = tmp_path / "brains"
    for index, subject in enumerate(["sub-01", "sub-02", "sub-03"]):
        save_scan(root / subject / "T1" / "t1.nii.gz", seed=index)
        if subject != "sub-03":
            save_scan(root / subject / "T2" / "t2.nii", seed=10 + index)
        (root / subject / "T1" / "t1.json").write_text("{}")  # sidecar, ignored
    return root


@pytest.fixture
def demographics(tmp_path: Path) -> Path:
    path = tmp_path / "participants.csv"
    path.write_text("age,participant_id,sex\n54,sub-01,F\n61,sub-02,M\n47,sub-99,F\n")
    return path


def test_inspect_lists_subjects_by_modality(medical_root: Path) -> None:
    info = DATASET_TYPES["medical-folder"].inspect(medical_root)
    assert info.shape == [2, 2]  # two complete subjects, two modalities
    assert info.sample_count == 2
    assert info.dtypes == {"T1": "float32", "T2": "float32"}
    assert info.preview["modalities"] == ["T1", "T2"]
    assert info.preview["subject_count"] == 3
    assert info.preview["incomplete_subjects"] == ["sub-03"]
    assert info.preview["subjects"][2] == {
        "subject": "sub-03",
        "modalities": ["T1"],
        "demographics": False,
    }
    assert info.preview["image_shapes"] == {"T1": {"6x5x4": 3}, "T2": {"6x5x4": 2}}


def test_demographics_are_joined_on_the_index_column(
    medical_root: Path, demographics: Path
) -> None:
    info = DATASET_TYPES["medical-folder"].inspect(
        medical_root, demographics=demographics, index_column="participant_id"
    )
    assert info.sample_count == 2
    assert info.dtypes["demographics.age"] == "int64"
    assert info.preview["demographics_columns"] == ["age", "participant_id", "sex"]
    assert info.preview["demographics_without_folder"] == ["sub-99"]
    folder = load_medical_folder(medical_root, demographics, "participant_id")
    assert folder.subjects == ["sub-01", "sub-02"]
    assert folder.demographics["sub-02"]["sex"] == "M"


def test_load_image_returns_the_voxels(medical_root: Path) -> None:
    folder = load_medical_folder(medical_root)
    expected = nib.load(medical_root / "sub-02" / "T2" / "t2.nii").get_fdata()
    np.testing.assert_allclose(folder.load_image("sub-02", "T2"), expected)
    with pytest.raises(DatasetError, match="'sub-03' has no 'T2' image"):
        folder.load_image("sub-03", "T2")


def test_unknown_index_column_is_refused(medical_root: Path, demographics: Path) -> None:
    with pytest.raises(DatasetError, match="no column 'subject'"):
        DATASET_TYPES["medical-folder"].inspect(
            medical_root, demographics=demographics, index_column="subject"
        )


def test_duplicate_subject_in_demographics_is_refused(medical_root: Path, tmp_path: Path) -> None:
    table = tmp_path / "dup.csv"
    table.write_text("id,age\nsub-01,3\nsub-01,4\n")
    with pytest.raises(DatasetError, match="'sub-01' appears twice"):
        DATASET_TYPES["medical-folder"].inspect(medical_root, demographics=table)


def test_corrupt_nifti_is_refused_naming_the_scan(medical_root: Path) -> None:
    (medical_root / "sub-02" / "T2" / "t2.nii").write_bytes(b"this is not a NIfTI header" * 20)
    with pytest.raises(DatasetError, match=r"sub-02/T2/t2\.nii is not a readable NIfTI"):
        DATASET_TYPES["medical-folder"].inspect(medical_root)


def test_truncated_nifti_data_is_refused(medical_root: Path) -> None:
    scan = medical_root / "sub-01" / "T2" / "t2.nii"
    scan.write_bytes(scan.read_bytes()[:-40])
    with pytest.raises(DatasetError, match="truncated"):
        DATASET_TYPES["medical-folder"].inspect(medical_root)


def test_damaged_gzip_nifti_is_refused(medical_root: Path) -> None:
    scan = medical_root / "sub-01" / "T1" / "t1.nii.gz"
    data = scan.read_bytes()
    scan.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"sub-01/T1/t1\.nii\.gz"):
        DATASET_TYPES["medical-folder"].inspect(medical_root)


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is empty"):
        DATASET_TYPES["medical-folder"].inspect(tmp_path)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        DATASET_TYPES["medical-folder"].inspect(tmp_path / "absent")


def test_image_folder_given_as_medical_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "a.png").write_bytes(b"\x89PNG")
    with pytest.raises(DatasetError, match="holds no NIfTI image"):
        DATASET_TYPES["medical-folder"].inspect(tmp_path)


def test_two_images_in_one_modality_folder_are_refused(medical_root: Path) -> None:
    save_scan(medical_root / "sub-01" / "T1" / "second.nii")
    with pytest.raises(DatasetError, match="holds 2 NIfTI images"):
        DATASET_TYPES["medical-folder"].inspect(medical_root)
