"""Small PNG thumbnails of an image dataset's first files, for its preview page.

Only a file the dataset's own preview lists (``first_files``, relative to the dataset's
folder) is ever opened, and only if it resolves inside that folder: the URL names an
index into that list, never a path.
"""

from __future__ import annotations

import io
from pathlib import Path

from fedward.errors import DatasetError, NotFound

THUMBNAIL_PX = 96
MAX_THUMBNAILS = 12
MAX_IMAGE_PIXELS = 50_000_000  # refuse decompression bombs before decoding


def thumbnail_files(preview: dict[str, object]) -> list[str]:
    files = preview.get("first_files")
    if not isinstance(files, list):
        return []
    return [name for name in files[:MAX_THUMBNAILS] if isinstance(name, str)]


def thumbnail_png(dataset_path: Path, relative: str, size_px: int = THUMBNAIL_PX) -> bytes:
    from PIL import Image, UnidentifiedImageError  # the node extra brings Pillow

    root = dataset_path.resolve()
    file = (root / relative).resolve()
    if not file.is_relative_to(root) or not file.is_file():
        raise NotFound(f"no image {relative!r} in this dataset")
    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with Image.open(file) as image:
            image.thumbnail((size_px, size_px))
            converted = image.convert("RGB" if image.mode not in ("L", "RGB") else image.mode)
            output = io.BytesIO()
            converted.save(output, format="PNG")
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot read image {relative!r}: {exc}") from exc
    return output.getvalue()
