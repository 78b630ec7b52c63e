"""NIfTI files read as untrusted input: a bounded header first, then sizes against the file.

``nibabel.load`` trusts the file it opens: it reads header extensions up to the
header's ``vox_offset``, each as long as the file says (an extension size of 7 means
"read to the end"), so a ``.nii.gz`` of a few hundred KiB can make it decompress
gigabytes into memory. Here the fixed-size header is read first and its
``vox_offset`` bounded (``MAX_EXTENSION_BYTES``); only those bytes are handed to nibabel,
so whatever the extensions claim, nibabel cannot read past them. Once that check
passed, ``nibabel.load`` of the same file reads the same bytes.

``check_nifti_data`` then computes the data size with Python ints (seven int16
dimensions multiply to far past int64), refuses a non-positive dimension, compares the
size with what the file can hold before reading it, and decompresses a ``.nii.gz`` no
further than twice what its header announces.
"""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path
from typing import Any

from fedward.errors import DatasetError
from fedward.learning.datasets.compressed_files import (
    CHUNK_BYTES,
    count_bytes_up_to,
    is_gzip,
    max_content_bytes,
    open_maybe_gzip,
)

#: Header extensions (DICOM tags, JSON sidecars) are KiB in practice.
MAX_EXTENSION_BYTES = 16 << 20
_NIFTI1_BYTES, _NIFTI2_BYTES = 348, 540
_EXTENSION_FLAG_BYTES = 4


def nibabel_module() -> Any:
    try:
        import nibabel  # imported here: only medical folders need nibabel
    except ImportError as exc:
        raise DatasetError(
            "medical-folder datasets need nibabel", hint="install fedward[node] (or nibabel)"
        ) from exc
    return nibabel


def _shown(path: Path, root: Path) -> str:
    return str(path.relative_to(root))


def _why(exc: BaseException) -> str:
    # An OSError's text may hold the file's absolute path; its strerror does not.
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


def _header_kind(head: bytes, shown: str) -> tuple[str, int, float]:
    """(image class name, header size, vox_offset) from the fixed-size header."""
    for order in "<>":
        header_bytes = struct.unpack(order + "i", head[:4])[0] if len(head) >= 4 else 0
        if header_bytes == _NIFTI1_BYTES and head[344:348] == b"n+1\0":
            return "Nifti1Image", _NIFTI1_BYTES, struct.unpack(order + "f", head[108:112])[0]
        if header_bytes == _NIFTI2_BYTES and head[4:8] == b"n+2\0" and len(head) >= 176:
            return "Nifti2Image", _NIFTI2_BYTES, struct.unpack(order + "q", head[168:176])[0]
    raise DatasetError(
        f"{shown} is not a readable NIfTI image (no single-file NIfTI-1 or NIfTI-2 header)"
    )


def read_nifti_header(path: Path, root: Path) -> Any:
    """The nibabel image of ``path`` built from its header and extensions only (its data
    cannot be read through it); DatasetError naming the file relative to ``root``."""
    shown = _shown(path, root)
    nibabel = nibabel_module()
    try:
        with open_maybe_gzip(path) as handle:
            head = handle.read(_NIFTI2_BYTES + _EXTENSION_FLAG_BYTES)
            class_name, header_bytes, vox_offset = _header_kind(head, shown)
            first_data = header_bytes + _EXTENSION_FLAG_BYTES
            if not (math.isfinite(vox_offset) and vox_offset >= 0):
                raise DatasetError(f"{shown} has an impossible data offset ({vox_offset})")
            if vox_offset > first_data + MAX_EXTENSION_BYTES:
                raise DatasetError(
                    f"{shown} announces {int(vox_offset) - first_data} bytes of header "
                    f"extensions, more than the {MAX_EXTENSION_BYTES >> 20} MiB accepted"
                )
            prefix_bytes = max(math.ceil(vox_offset), first_data)
            prefix = head[:prefix_bytes] + handle.read(max(0, prefix_bytes - len(head)))
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{shown} is corrupt ({_why(exc)})") from exc
    try:
        return getattr(nibabel, class_name).from_bytes(prefix)
    # nibabel reports damaged headers through many exception types (HeaderDataError,
    # ValueError, struct errors); all mean the same thing here.
    except Exception as exc:
        raise DatasetError(
            f"{shown} is not a readable NIfTI image ({type(exc).__name__}: {exc})"
        ) from exc


def nifti_data_bytes(image: Any, path: Path, root: Path) -> int:
    """Where the voxels of ``image`` end in its (decompressed) file; DatasetError for a
    shape with a non-positive dimension."""
    header = image.header
    shape = tuple(int(d) for d in header.get_data_shape())
    if not shape or min(shape) <= 0:
        raise DatasetError(f"{_shown(path, root)} has an impossible image shape {list(shape)}")
    # The array proxy knows where the voxels start (the header field may read 0 after load).
    offset = int(getattr(image.dataobj, "offset", header.get_data_offset()))
    return offset + math.prod(shape) * int(header.get_data_dtype().itemsize)


def check_nifti_data(image: Any, path: Path, root: Path) -> None:
    """DatasetError unless the file holds every voxel its header announces."""
    shown = _shown(path, root)
    expected = nifti_data_bytes(image, path, root)
    if expected > max_content_bytes(path):
        raise DatasetError(
            f"{shown} announces {expected} bytes of image data, more than the file can hold",
            hint="the file is truncated, corrupt or forged",
        )
    if not is_gzip(path):
        actual = path.stat().st_size
    else:
        # Reading to the end also checks the gzip CRC; a stream that goes on far past
        # what the header announces is refused rather than decompressed to its end.
        limit = 2 * expected + CHUNK_BYTES
        try:
            with open_maybe_gzip(path) as handle:
                actual = count_bytes_up_to(handle, limit)
        except (OSError, EOFError, zlib.error) as exc:
            raise DatasetError(f"{shown} is corrupt ({_why(exc)})") from exc
        if actual > limit:
            raise DatasetError(
                f"{shown} decompresses to far more than the {expected} bytes its header announces",
                hint="the file is corrupt or forged",
            )
    if actual < expected:
        raise DatasetError(f"{shown} is truncated: {actual} bytes, its header needs {expected}")


def load_nifti(path: Path, root: Path) -> Any:
    """The nibabel image (header, affine, lazy data) of a file whose header passed
    ``read_nifti_header``."""
    read_nifti_header(path, root)
    try:
        return nibabel_module().load(path)
    except Exception as exc:
        raise DatasetError(
            f"{_shown(path, root)} is not a readable NIfTI image ({type(exc).__name__})"
        ) from exc
