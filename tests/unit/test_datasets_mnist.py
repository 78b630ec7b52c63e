from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from fedward.errors import DatasetError
from fedward.learning.datasets import DATASET_TYPES, load_mnist
from fedward.learning.datasets.mnist import read_idx


def idx_bytes(array: np.ndarray) -> bytes:
    type_code = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}[array.dtype]
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_split(
    folder: Path, split: str, count: int, gzipped: bool, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gzipped else ""
    for kind, ndim, array in (("images", 3, images), ("labels", 1, labels)):
        data = idx_bytes(array)
        path = folder / f"{split}-{kind}-idx{ndim}-ubyte{suffix}"
        path.write_bytes(gzip.compress(data) if gzipped else data)
    return images, labels


@pytest.mark.parametrize("gzipped", [True, False])
def test_inspect_reads_splits_counts_and_shape(tmp_path: Path, gzipped: bool) -> None:
    _, train_labels = write_split(tmp_path, "train", 12, gzipped, seed=1)
    _, test_labels = write_split(tmp_path, "t10k", 5, gzipped, seed=2)
    info = DATASET_TYPES["mnist"].inspect(tmp_path)
    assert info.shape == [17, 28, 28]
    assert info.sample_count == 17
    assert info.dtypes == {"image": "uint8", "label": "uint8"}
    assert info.preview["splits"] == {"t10k": 5, "train": 12}
    all_labels = np.concatenate([test_labels, train_labels])
    assert info.preview["counts_per_class"] == {
        str(k): int(v) for k, v in zip(*np.unique(all_labels, return_counts=True), strict=True)
    }


def test_torchvision_layout_is_found(tmp_path: Path) -> None:
    write_split(tmp_path / "MNIST" / "raw", "train", 4, gzipped=True)
    assert DATASET_TYPES["mnist"].inspect(tmp_path).sample_count == 4


def test_load_mnist_returns_pixels_and_labels_per_split(tmp_path: Path) -> None:
    train_images, train_labels = write_split(tmp_path, "train", 6, gzipped=True, seed=3)
    test_images, _ = write_split(tmp_path, "t10k", 2, gzipped=False, seed=4)
    images, labels = load_mnist(tmp_path, split="train")
    np.testing.assert_array_equal(images, train_images)
    assert labels.dtype == np.int64
    assert labels.tolist() == train_labels.tolist()
    everything, _ = load_mnist(tmp_path)
    np.testing.assert_array_equal(everything[:2], test_images)  # t10k sorts first
    assert everything.shape == (8, 28, 28)


def test_read_idx_converts_big_endian_values(tmp_path: Path) -> None:
    values = np.arange(6, dtype=">i4").reshape(2, 3)
    (tmp_path / "v.idx").write_bytes(idx_bytes(values))
    loaded = read_idx(tmp_path / "v.idx")
    assert loaded.dtype == np.dtype("int32")
    assert loaded.tolist() == [[0, 1, 2], [3, 4, 5]]


def test_truncated_image_file_is_refused(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 3, gzipped=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        DATASET_TYPES["mnist"].inspect(tmp_path)


def test_corrupt_gzip_is_refused(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 3, gzipped=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz"):
        DATASET_TYPES["mnist"].inspect(tmp_path)


def test_non_idx_file_with_an_idx_name_is_refused(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 3, gzipped=False)
    (tmp_path / "train-labels-idx1-ubyte").write_text("label\n1\n2\n3\n")
    with pytest.raises(DatasetError, match="not an IDX file"):
        DATASET_TYPES["mnist"].inspect(tmp_path)


def test_images_without_labels_are_refused(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 3, gzipped=False)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="split 'train' has no labels file"):
        DATASET_TYPES["mnist"].inspect(tmp_path)


def test_label_count_must_match_image_count(tmp_path: Path) -> None:
    write_split(tmp_path, "train", 3, gzipped=False)
    labels = np.zeros(2, dtype=np.uint8)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(DatasetError, match="3 images but 2 labels"):
        DATASET_TYPES["mnist"].inspect(tmp_path)


def test_folder_without_idx_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(DatasetError, match="holds no MNIST IDX files"):
        DATASET_TYPES["mnist"].inspect(tmp_path)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        DATASET_TYPES["mnist"].inspect(tmp_path / "absent")
