from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fedward.errors import DatasetError
from fedward.learning.datasets import DATASET_TYPES, load_images


def save_image(
    path: Path, size: tuple[int, int] = (8, 6), mode: str = "RGB", seed: int = 0
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    channels = {"L": (), "RGB": (3,), "RGBA": (4,)}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], *channels), dtype=np.uint8)
    image_format = "JPEG" if path.suffix.lower() in {".jpg", ".jpeg"} else "PNG"
    Image.fromarray(pixels, mode).save(path, format=image_format)


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    root = tmp_path / "xrays"
    for index in range(3):
        save_image(root / "normal" / f"n{index}.png", seed=index)
    for index in range(2):
        save_image(root / "pneumonia" / f"p{index}.jpg", seed=10 + index)
    (root / "normal" / "notes.txt").write_text("scanned in 2021")
    (root / ".DS_Store").write_bytes(b"\x00")
    return root


def test_inspect_reports_classes_counts_and_shape(image_folder: Path) -> None:
    info = DATASET_TYPES["images"].inspect(image_folder)
    assert info.shape == [5, 6, 8, 3]
    assert info.sample_count == 5
    assert info.dtypes == {"image": "uint8", "label": "int64"}
    assert info.preview["classes"] == ["normal", "pneumonia"]
    assert info.preview["counts_per_class"] == {"normal": 3, "pneumonia": 2}
    assert info.preview["image_sizes"] == {"8x6": 5}
    assert info.preview["ignored_files"] == 1
    assert info.preview["first_files"][0] == "normal/n0.png"


def test_load_images_gives_pixels_and_labels(image_folder: Path) -> None:
    pixels, labels, classes = load_images(image_folder)
    assert pixels.shape == (5, 6, 8, 3)
    assert pixels.dtype == np.uint8
    assert labels.tolist() == [0, 0, 0, 1, 1]
    assert classes == ["normal", "pneumonia"]
    expected = np.asarray(Image.open(image_folder / "normal" / "n0.png"))
    np.testing.assert_array_equal(pixels[0], expected)


def test_grayscale_images_load_with_one_channel(tmp_path: Path) -> None:
    for digit in range(2):
        save_image(tmp_path / "d" / str(digit) / "a.png", size=(8, 8), mode="L", seed=digit)
    info = DATASET_TYPES["images"].inspect(tmp_path / "d")
    assert info.shape == [2, 8, 8, 1]
    pixels, _, _ = load_images(tmp_path / "d")
    assert pixels.shape == (2, 8, 8, 1)


def test_different_sizes_need_a_size_to_load(tmp_path: Path) -> None:
    save_image(tmp_path / "d" / "a" / "1.png", size=(8, 6))
    save_image(tmp_path / "d" / "b" / "1.png", size=(10, 4))
    info = DATASET_TYPES["images"].inspect(tmp_path / "d")
    assert info.shape == [2]
    with pytest.raises(DatasetError, match="different sizes"):
        load_images(tmp_path / "d")
    pixels, _, _ = load_images(tmp_path / "d", size=(4, 4), mode="L")
    assert pixels.shape == (2, 4, 4, 1)


def test_missing_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such folder"):
        DATASET_TYPES["images"].inspect(tmp_path / "absent")


def test_empty_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is empty"):
        DATASET_TYPES["images"].inspect(tmp_path)


def test_images_without_class_folders_are_refused(tmp_path: Path) -> None:
    save_image(tmp_path / "a.png")
    with pytest.raises(DatasetError, match="no class folder"):
        DATASET_TYPES["images"].inspect(tmp_path)


def test_class_folder_without_images_is_refused(tmp_path: Path) -> None:
    save_image(tmp_path / "a" / "1.png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "readme.txt").write_text("nothing")
    with pytest.raises(DatasetError, match="'b' holds no PNG or JPEG"):
        DATASET_TYPES["images"].inspect(tmp_path)


def test_csv_file_given_as_images_is_refused(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="is a file"):
        DATASET_TYPES["images"].inspect(table)


def test_corrupt_image_is_refused_naming_it(tmp_path: Path) -> None:
    save_image(tmp_path / "a" / "good.png")
    (tmp_path / "a" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(DatasetError, match=r"a/bad\.png"):
        DATASET_TYPES["images"].inspect(tmp_path)


def test_other_formats_behind_an_image_suffix_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    Image.new("RGB", (4, 4)).save(tmp_path / "a" / "x.png", format="GIF")
    with pytest.raises(DatasetError, match="GIF image, not PNG or JPEG"):
        DATASET_TYPES["images"].inspect(tmp_path)
