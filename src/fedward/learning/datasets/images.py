"""Image folders: one sub-folder per class holding PNG or JPEG files (read with Pillow).

Classes are the sub-folder names in sorted order; label ``i`` is ``classes[i]``. Images
may sit deeper inside a class folder. Hidden files are skipped; other files (notes,
sidecars) are counted in the preview and otherwise ignored. Every image is opened,
verified and decoded at inspection, so a corrupt, truncated or mislabelled file is found
when the dataset is added, not in the middle of a training round.

An image's declared size is checked against ``MAX_IMAGE_PIXELS`` before any pixel is
decoded: a PNG of a few KiB can declare 30000 x 30000 pixels (a decompression bomb).
The limit is ours, explicit, and below Pillow's own default, so Pillow's global setting
is neither relied on nor changed.

Pixels load as numpy ``(N, H, W, C)`` arrays. Palette and bi-level images are converted
to RGB (or RGBA); a folder that mixes modes loads as RGB unless a ``mode`` is given.
"""

from __future__ import annotations

import contextlib
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fedward.errors import DatasetError
from fedward.learning.datasets.dataset_type import (
    DatasetInfo,
    require_folder,
    visible_entries,
    visible_files_below,
)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
_FORMATS = frozenset({"PNG", "JPEG"})
# Pillow modes that numpy cannot use as they are, and what they become.
_CONVERTED_MODES = {"P": "RGB", "PA": "RGBA", "1": "L", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB"}
_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I": 1, "I;16": 1, "F": 1}
_DTYPES = {"I": "int32", "I;16": "uint16", "F": "float32"}
_PREVIEW_FILES = 5
#: 8192 x 8192: more than a training image needs; decoded, at most 256 MiB (4 bytes a pixel).
MAX_IMAGE_PIXELS = 1 << 26


@dataclass(frozen=True)
class ImageFolderIndex:
    """The images of a folder dataset, without their pixels."""

    root: Path
    classes: list[str]
    files: list[tuple[Path, int]]  # (image path, label)
    sizes: Counter[tuple[int, int]]  # (width, height) -> count
    modes: Counter[str]
    ignored_files: int


def _pillow() -> Any:
    try:
        from PIL import Image  # imported here: only image datasets need Pillow
    except ImportError as exc:
        raise DatasetError(
            "image datasets need Pillow", hint="install fedward[node] (or pillow)"
        ) from exc
    return Image


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def index_image_folder(path: Path) -> ImageFolderIndex:
    """Check the layout and open every image; DatasetError naming the first bad file."""
    root = require_folder(Path(path), "images")
    image_module = _pillow()
    entries = list(visible_entries(root))
    class_dirs = [entry for entry in entries if entry.is_dir()]
    if not class_dirs:
        loose = [e for e in entries if e.suffix.lower() in IMAGE_SUFFIXES]
        if loose:
            raise DatasetError(
                f"{root} holds images but no class folder",
                hint="sort the images into one sub-folder per class",
            )
        raise DatasetError(f"{root} is empty: expected one sub-folder per class of PNG/JPEG images")
    files: list[tuple[Path, int]] = []
    sizes: Counter[tuple[int, int]] = Counter()
    modes: Counter[str] = Counter()
    ignored = 0
    for label, class_dir in enumerate(class_dirs):
        found = 0
        for file in visible_files_below(class_dir):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                ignored += 1
                continue
            size, mode = _check_image(image_module, file, root)
            sizes[size] += 1
            modes[mode] += 1
            files.append((file, label))
            found += 1
        if not found:
            raise DatasetError(
                f"class folder {class_dir.name!r} holds no PNG or JPEG image",
                hint="remove the folder or add its images",
            )
    return ImageFolderIndex(root, [d.name for d in class_dirs], files, sizes, modes, ignored)


def _check_image(image_module: Any, file: Path, root: Path) -> tuple[tuple[int, int], str]:
    with _opened(image_module, file, _relative(file, root)) as image:
        image_format, size, mode = image.format, image.size, image.mode
        image.verify()  # chunk checksums; it leaves the image unusable
    if image_format in _FORMATS:
        with _opened(image_module, file, _relative(file, root)) as image:
            image.load()  # every pixel decoded: a truncated JPEG passes verify()
    if image_format not in _FORMATS:
        raise DatasetError(
            f"{_relative(file, root)} is a {image_format} image, not PNG or JPEG",
            hint="convert it to PNG",
        )
    return (int(size[0]), int(size[1])), str(mode)


@contextlib.contextmanager
def _opened(image_module: Any, file: Path, shown: str) -> Iterator[Any]:
    """``file`` opened by Pillow, its declared size within ``MAX_IMAGE_PIXELS``; any
    failure inside the block is a DatasetError naming the file as ``shown``."""
    try:
        with file.open("rb") as handle, image_module.open(handle) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise DatasetError(_too_large(shown, f"{width} x {height}"))
            yield image
    except DatasetError:
        raise
    # Pillow's own guard, if its global limit is lower than ours; a warning turned into
    # an error by the warnings filter arrives here too.
    except (image_module.DecompressionBombError, image_module.DecompressionBombWarning) as exc:
        raise DatasetError(_too_large(shown)) from exc
    except OSError as exc:
        raise DatasetError(f"{shown} is not a readable image ({_reason(exc)})") from exc
    # Pillow raises SyntaxError/ValueError/struct errors on some damaged headers.
    except (SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise DatasetError(f"{shown} is a damaged image ({exc})") from exc


def _too_large(shown: str, declared: str = "too many") -> str:
    return (
        f"{shown} declares {declared} pixels, more than the {MAX_IMAGE_PIXELS} accepted "
        "(a decompression bomb, or an image far larger than training needs)"
    )


def _reason(exc: OSError) -> str:
    # Pillow's "cannot identify image file <name>" would show the node's path; the file
    # was opened by us, so it names only a file object.
    return exc.strerror or str(exc).split(" <_io.", 1)[0]


def _target_mode(modes: Counter[str], requested: str | None) -> str:
    if requested is not None:
        if requested not in _CHANNELS:
            raise DatasetError(
                f"unknown image mode {requested!r}", hint="use one of " + ", ".join(_CHANNELS)
            )
        return requested
    converted = {_CONVERTED_MODES.get(mode, mode) for mode in modes}
    converted = {mode if mode in _CHANNELS else "RGB" for mode in converted}
    return converted.pop() if len(converted) == 1 else "RGB"


def inspect_images(path: Path) -> DatasetInfo:
    index = index_image_folder(path)
    mode = _target_mode(index.modes, None)
    counts = Counter(label for _, label in index.files)
    if len(index.sizes) == 1:
        ((width, height),) = index.sizes
        shape = [len(index.files), height, width, _CHANNELS[mode]]
    else:
        shape = [len(index.files)]
    return DatasetInfo(
        shape=shape,
        dtypes={"image": _DTYPES.get(mode, "uint8"), "label": "int64"},
        sample_count=len(index.files),
        preview={
            "classes": list(index.classes),
            "counts_per_class": {name: counts[i] for i, name in enumerate(index.classes)},
            "image_sizes": {f"{w}x{h}": n for (w, h), n in index.sizes.most_common(10)},
            "modes": dict(index.modes),
            "load_mode": mode,
            "first_files": [_relative(f, index.root) for f, _ in index.files[:_PREVIEW_FILES]],
            "ignored_files": index.ignored_files,
        },
    )


def read_image(file: Path, mode: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """One image as ``(H, W, C)``, converted to ``mode`` and resized to ``size=(W, H)``."""
    image_module = _pillow()
    with _opened(image_module, Path(file), Path(file).name) as image:
        converted = image.convert(mode) if image.mode != mode else image
        if size is not None and converted.size != tuple(size):
            converted = converted.resize(tuple(size), image_module.Resampling.BILINEAR)
        pixels = np.asarray(converted)
    return pixels[..., np.newaxis] if pixels.ndim == 2 else pixels


def load_images(
    path: Path, size: tuple[int, int] | None = None, mode: str | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(X, y, classes)``: X ``(N, H, W, C)``, y int64 labels indexing ``classes``.

    Images of different sizes need ``size=(width, height)``.
    """
    index = index_image_folder(path)
    target_mode = _target_mode(index.modes, mode)
    if size is None and len(index.sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for (w, h), _ in index.sizes.most_common(3))
        raise DatasetError(
            f"images have different sizes ({shown}, ...)",
            hint="pass size=(width, height) to resize them when loading",
        )
    pixels = np.stack([read_image(file, target_mode, size) for file, _ in index.files])
    labels = np.array([label for _, label in index.files], dtype=np.int64)
    return pixels, labels, list(index.classes)
