"""MNIST-style datasets: pairs of IDX files (images + labels), gzipped or not.

A dataset folder holds, directly or under ``raw/`` or ``MNIST/raw/`` (torchvision's
layout), files named ``<split>-images-idx3-ubyte[.gz]`` and
``<split>-labels-idx1-ubyte[.gz]`` (``train``, ``t10k``, ...). Gzip is recognised by its
magic bytes, not its name. Inspection checks every header and every file's length (a
gzip file is decompressed as a stream, which also checks its CRC), so a truncated
download is refused at add time.

A header is a claim: its sizes are computed with Python ints (a fixed-width product of
three uint32 dimensions wraps around, and made a header announcing 2**64 bytes look
like an empty file), every dimension must be positive, and the announced data must fit
the file (``compressed_files``) before any of it is read. A gzip stream is never
decompressed past what its header announced.

IDX: two zero bytes, a type code, the number of dimensions, one big-endian uint32 per
dimension, then the values, big-endian.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from fedward.errors import DatasetError
from fedward.learning.datasets.compressed_files import (
    count_bytes_up_to,
    max_content_bytes,
    open_maybe_gzip,
)
from fedward.learning.datasets.dataset_type import DatasetInfo, require_folder

_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_FILE_NAME = re.compile(
    r"(?P<split>.+?)[-_.](?P<kind>images|labels)[-_.]idx(?P<ndim>[13])[-_.]ubyte(\.gz)?"
)
_SEARCHED = ("", "raw", "MNIST/raw")


@dataclass(frozen=True)
class IdxHeader:
    dtype: np.dtype
    shape: tuple[int, ...]
    data_offset: int

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


@dataclass(frozen=True)
class MnistSplit:
    name: str
    images: Path
    labels: Path


def _parse_header(handle: BinaryIO, name: str) -> IdxHeader:
    head = handle.read(4)
    if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in _IDX_TYPES or head[3] == 0:
        raise DatasetError(f"{name} is not an IDX file (bad magic number)")
    ndim = head[3]
    dims = handle.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DatasetError(f"{name} is truncated inside its IDX header")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    if 0 in shape:
        raise DatasetError(f"{name} has a zero dimension in its IDX header {list(shape)}")
    return IdxHeader(_IDX_TYPES[head[2]], shape, 4 + 4 * ndim)


def _check_fits(header: IdxHeader, path: Path, name: str) -> None:
    """DatasetError, before reading any data, when the file cannot hold what the header
    announces."""
    room = max_content_bytes(path) - header.data_offset
    if header.data_bytes > room:
        raise DatasetError(
            f"{name} announces {header.data_bytes} data bytes ({list(header.shape)} "
            f"{header.dtype.newbyteorder('=')}), more than the file can hold",
            hint="the file is truncated or corrupt; download it again",
        )


def _length_error(name: str, found: int, header: IdxHeader) -> DatasetError:
    held = f"{found} data bytes" if found <= header.data_bytes else "more data"
    return DatasetError(
        f"{name} holds {held}, its header announces {header.data_bytes}",
        hint="the file is truncated or corrupt; download it again",
    )


def read_idx_header(path: Path, check_length: bool = True, *, name: str | None = None) -> IdxHeader:
    """The header of an IDX file; with ``check_length``, also that its data is all there.
    ``name``: how messages call the file (default: its name)."""
    path = Path(path)
    name = name or path.name
    try:
        with open_maybe_gzip(path) as handle:
            header = _parse_header(handle, name)
            _check_fits(header, path, name)
            if check_length:
                found = count_bytes_up_to(handle, header.data_bytes)
                if found != header.data_bytes:
                    raise _length_error(name, found, header)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read {name}: {exc}") from exc
    return header


def read_idx(path: Path, *, name: str | None = None) -> np.ndarray:
    """The whole IDX array, in native byte order."""
    path = Path(path)
    name = name or path.name
    try:
        with open_maybe_gzip(path) as handle:
            header = _parse_header(handle, name)
            _check_fits(header, path, name)
            # One byte more than announced tells a longer file apart, and no more is read.
            data = handle.read(header.data_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"cannot read {name}: {exc}") from exc
    if len(data) != header.data_bytes:
        raise _length_error(name, len(data), header)
    array = np.frombuffer(data, dtype=header.dtype).reshape(header.shape)
    return array.astype(header.dtype.newbyteorder("="), copy=False)


def find_mnist_splits(path: Path) -> list[MnistSplit]:
    """The image/label file pairs of a dataset folder, by split name."""
    root = require_folder(Path(path), "mnist")
    for sub in _SEARCHED:
        folder = root / sub if sub else root
        if not folder.is_dir():
            continue
        found: dict[tuple[str, str], Path] = {}
        for file in sorted(folder.iterdir()):
            match = _FILE_NAME.fullmatch(file.name)
            if match and file.is_file():
                found[(match["split"], match["kind"])] = file
        if found:
            return _pair(found, folder)
    raise DatasetError(
        f"{root} holds no MNIST IDX files",
        hint="expected files like train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz",
    )


def _pair(found: dict[tuple[str, str], Path], folder: Path) -> list[MnistSplit]:
    splits = []
    for split in sorted({split for split, _ in found}):
        images, labels = found.get((split, "images")), found.get((split, "labels"))
        if images is None or labels is None:
            missing = "labels" if labels is None else "images"
            raise DatasetError(f"{folder.name}: split {split!r} has no {missing} file")
        splits.append(MnistSplit(split, images, labels))
    return splits


def _check_split(split: MnistSplit, root: Path) -> tuple[IdxHeader, np.ndarray]:
    images_name = str(split.images.relative_to(root))
    labels_name = str(split.labels.relative_to(root))
    images = read_idx_header(split.images, name=images_name)
    if len(images.shape) != 3:
        raise DatasetError(f"{images_name} holds {len(images.shape)}-D data, expected images (3-D)")
    # Labels are read whole: check their header alone first, so a labels file that
    # claims to be images is refused before its data is read.
    if len(read_idx_header(split.labels, check_length=False, name=labels_name).shape) != 1:
        raise DatasetError(f"{labels_name} is not a 1-D labels file")
    labels = read_idx(split.labels, name=labels_name)
    if labels.ndim != 1:
        raise DatasetError(f"{labels_name} holds {labels.ndim}-D data, expected labels")
    if labels.shape[0] != images.shape[0]:
        raise DatasetError(
            f"split {split.name!r}: {images.shape[0]} images but {labels.shape[0]} labels"
        )
    return images, labels


def inspect_mnist(path: Path) -> DatasetInfo:
    splits = find_mnist_splits(path)
    headers, counts, sizes = [], Counter[int](), set()
    for split in splits:
        header, labels = _check_split(split, Path(path))
        headers.append(header)
        counts.update(int(v) for v in labels)
        sizes.add(header.shape[1:])
    if len(sizes) > 1:
        raise DatasetError(f"splits have different image sizes: {sorted(sizes)}")
    total = sum(h.shape[0] for h in headers)
    if total == 0:
        raise DatasetError(f"{path} holds no image")
    (height, width) = sizes.pop()
    return DatasetInfo(
        shape=[total, height, width],
        dtypes={"image": str(headers[0].dtype.newbyteorder("=")), "label": "uint8"},
        sample_count=total,
        preview={
            "splits": {s.name: h.shape[0] for s, h in zip(splits, headers, strict=True)},
            "counts_per_class": {str(k): counts[k] for k in sorted(counts)},
            "image_size": [height, width],
            "files": [p.name for s in splits for p in (s.images, s.labels)],
        },
    )


def load_mnist(path: Path, split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: X ``(N, H, W)``, y int64; every split in name order unless ``split``."""
    splits = find_mnist_splits(path)
    if split is not None:
        splits = [s for s in splits if s.name == split]
        if not splits:
            raise DatasetError(f"no split named {split!r} in {Path(path).name}")
    images, labels = [], []
    for item in splits:
        pixels, targets = read_idx(item.images), read_idx(item.labels)
        if pixels.ndim != 3 or targets.shape != (pixels.shape[0],):
            raise DatasetError(f"split {item.name!r}: images and labels do not match")
        images.append(pixels)
        labels.append(targets.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)
