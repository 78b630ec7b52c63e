"""Forged dataset files given to ``fedward node dataset add``: headers that lie.

A node admin adds folders that came from elsewhere (a download, a partner, a USB disk).
Each file here is a few KiB with a header written by an attacker who read the readers:
sizes that wrap around in int64, dimensions that are zero or negative, more data than
the file holds, decompression bombs, truncated images. Each must be refused through the
real CLI with a clear ``DatasetError`` that names the file relative to the dataset (not
the node's absolute path), add nothing, and leave the node able to add a good dataset.

Where a reader must stop early (a gzip bomb), the file's compressed stream is cut short
far past the point a bounded reader needs: a reader that went on to the end would fail
with a different error (the stream is corrupt there) instead of the one expected.
"""

from __future__ import annotations

import gzip
import io
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from fedward.cli import cli
from fedward.errors import DatasetError

nibabel = pytest.importorskip("nibabel")
Image = pytest.importorskip("PIL.Image")


# --- the node ------------------------------------------------------------------------------


class NodeCli:
    """``fedward node ...`` on a real state directory, through click."""

    def __init__(self, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("NODE_ID", "FEDWARD_NODE_DIR", "FEDWARD_DATA_ROOT"):
            monkeypatch.delenv(name, raising=False)
        self.state_dir = state_dir
        self.runner = CliRunner()

    def run(self, *args: str) -> Result:
        base = ["node", "--node-id", "hospital-a", "--state-dir", str(self.state_dir)]
        return self.runner.invoke(cli, [*base, *args])

    def add(self, data_type: str, path: Path) -> Result:
        return self.run(
            "dataset", "add", "--type", data_type, "--path", str(path), "--name", "x", "--tags", "t"
        )

    def listing(self) -> str:
        result = self.run("dataset", "list")
        assert result.exit_code == 0, result.output
        return result.output


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NodeCli:
    return NodeCli(tmp_path / "state", monkeypatch)


def assert_refused_and_node_unchanged(
    node: NodeCli, data_type: str, root: Path, names: str, says: str, good: Path
) -> None:
    """The add fails with a DatasetError naming ``names`` and saying ``says``, without
    the node's path; nothing is added; a good dataset of the same type still goes in."""
    before = node.listing()
    result = node.add(data_type, root)
    assert result.exit_code != 0
    assert isinstance(result.exception, DatasetError), result.exception
    message = str(result.exception)
    assert names in message, message
    assert says in message, message
    assert str(root) not in message, message
    assert node.listing() == before
    accepted = node.add(data_type, good)
    assert accepted.exit_code == 0, (accepted.output, accepted.exception)
    assert node.listing() != before


# --- MNIST IDX -----------------------------------------------------------------------------


def idx(type_code: int, shape: tuple[int, ...], data: bytes) -> bytes:
    return (
        struct.pack(">BBBB", 0, 0, type_code, len(shape))
        + struct.pack(f">{len(shape)}I", *shape)
        + data
    )


def mnist_folder(root: Path, images: bytes, labels: bytes, *, gz: bool = False) -> Path:
    root.mkdir(parents=True)
    suffix = ".gz" if gz else ""
    (root / f"train-images-idx3-ubyte{suffix}").write_bytes(images)
    (root / f"train-labels-idx1-ubyte{suffix}").write_bytes(labels)
    return root


def good_mnist(root: Path) -> Path:
    pixels = np.zeros((2, 28, 28), np.uint8).tobytes()
    return mnist_folder(root, idx(0x08, (2, 28, 28), pixels), idx(0x08, (2,), b"\x01\x02"))


def bounded_bomb(head: bytes, announced: int, inflated_mib: int) -> bytes:
    """A gzip stream holding ``head``, ``announced`` bytes, then ``inflated_mib`` MiB more,
    cut off after its first quarter: only a reader that goes past the announced size
    gets to the cut (and fails there with a corrupt-stream error)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip framing
    body = compressor.compress(head + b"\0" * announced)
    zeros = b"\0" * (1 << 20)
    body += b"".join(compressor.compress(zeros) for _ in range(inflated_mib))
    body += compressor.flush()
    return body[: max(len(body) // 4, 4096)]


MnistCase = Callable[[Path], tuple[Path, str, str]]


def mnist_product_wraps_to_zero(root: Path) -> tuple[Path, str, str]:
    # 4 x 2**31 x 2**31 = 2**64 bytes: np.prod in int64 said 0, the empty file agreed.
    images = idx(0x08, (4, 2**31, 2**31), b"")
    folder = mnist_folder(root, images, idx(0x08, (4,), b"\0\1\2\3"))
    return folder, "train-images-idx3-ubyte announces 18446744073709551616", "more than the file"


def mnist_more_items_than_bytes(root: Path) -> tuple[Path, str, str]:
    images = idx(0x08, (60000, 28, 28), b"\0" * 10)
    folder = mnist_folder(root, images, idx(0x08, (60000,), b"\0" * 10))
    return folder, "train-images-idx3-ubyte announces 47040000", "more than the file"


def mnist_zero_dimension(root: Path) -> tuple[Path, str, str]:
    folder = mnist_folder(root, idx(0x08, (3, 0, 28), b""), idx(0x08, (3,), b"\0\1\2"))
    return folder, "train-images-idx3-ubyte", "zero dimension"


def mnist_unknown_type_code(root: Path) -> tuple[Path, str, str]:
    images = idx(0x0A, (1, 2, 2), b"\0" * 4)
    folder = mnist_folder(root, images, idx(0x08, (1,), b"\0"))
    return folder, "train-images-idx3-ubyte", "not an IDX file"


def mnist_gzip_claims_terabytes(root: Path) -> tuple[Path, str, str]:
    # A 1 KiB gzip file cannot inflate to 2**40 bytes: refused without inflating it.
    images = gzip.compress(idx(0x08, (2**20, 2**10, 2**10), b"\0" * 1000))
    folder = mnist_folder(root, images, gzip.compress(idx(0x08, (2**20,), b"")), gz=True)
    return folder, "train-images-idx3-ubyte.gz announces 1099511627776", "more than the file"


def mnist_gzip_bomb(root: Path) -> tuple[Path, str, str]:
    head = idx(0x08, (1, 28, 28), b"")
    images = bounded_bomb(head, 28 * 28, inflated_mib=32)
    folder = mnist_folder(root, images, gzip.compress(idx(0x08, (1,), b"\0")), gz=True)
    return folder, "train-images-idx3-ubyte.gz holds more data", "announces 784"


def mnist_labels_gzip_bomb(root: Path) -> tuple[Path, str, str]:
    # Labels are read whole: the read must stop at the announced size all the same.
    images = gzip.compress(idx(0x08, (2, 28, 28), b"\0" * 2 * 28 * 28))
    labels = bounded_bomb(idx(0x08, (2,), b""), 2, inflated_mib=32)
    folder = mnist_folder(root, images, labels, gz=True)
    return folder, "train-labels-idx1-ubyte.gz holds more data", "announces 2"


MNIST_CASES: dict[str, MnistCase] = {
    "IDX dims product 2**64 wraps to 0 in int64": mnist_product_wraps_to_zero,
    "IDX claims more items than bytes": mnist_more_items_than_bytes,
    "IDX zero dimension": mnist_zero_dimension,
    "IDX unknown type code": mnist_unknown_type_code,
    "IDX gzip claims more than deflate can hold": mnist_gzip_claims_terabytes,
    "IDX gzip bomb (images)": mnist_gzip_bomb,
    "IDX gzip bomb (labels)": mnist_labels_gzip_bomb,
}


@pytest.mark.parametrize("case", sorted(MNIST_CASES))
def test_forged_mnist_header_is_refused(node: NodeCli, tmp_path: Path, case: str) -> None:
    root, names, says = MNIST_CASES[case](tmp_path / "forged")
    good = good_mnist(tmp_path / "good")
    assert_refused_and_node_unchanged(node, "mnist", root, names, says, good)


# --- NIfTI ---------------------------------------------------------------------------------


def nifti_bytes(shape: tuple[int, ...] = (2, 2, 2)) -> bytes:
    image = nibabel.Nifti1Image(np.zeros(shape, np.uint8), np.eye(4))
    return bytes(image.to_bytes())


def patched(data: bytes, offset: int, fmt: str, *values: float) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def dims(*values: int) -> tuple[int, str, int, int, int, int, int, int, int]:
    padded = [len(values), *values, *[1] * (7 - len(values))]
    return (40, "<8h", *padded)  # type: ignore[return-value]


def medical_folder(root: Path, name: str, data: bytes) -> Path:
    (root / "sub-01" / "T1").mkdir(parents=True)
    (root / "sub-01" / "T1" / name).write_bytes(data)
    return root


NiftiCase = Callable[[Path], tuple[Path, str, str]]


def nifti_dims_overflow(root: Path) -> tuple[Path, str, str]:
    # 32767**7 voxels: past int64, where it used to wrap.
    data = patched(nifti_bytes(), *dims(*[32767] * 7))
    return medical_folder(root, "scan.nii", data), "sub-01/T1/scan.nii announces", "more than"


def nifti_negative_dim(root: Path) -> tuple[Path, str, str]:
    data = patched(nifti_bytes(), *dims(-2, 2, 2))
    return medical_folder(root, "scan.nii", data), "sub-01/T1/scan.nii", "impossible image shape"


def nifti_unknown_dtype(root: Path) -> tuple[Path, str, str]:
    data = patched(nifti_bytes(), 70, "<h", 999)
    return medical_folder(root, "scan.nii", data), "sub-01/T1/scan.nii", "not a readable NIfTI"


def nifti_more_voxels_than_bytes(root: Path) -> tuple[Path, str, str]:
    data = patched(nifti_bytes(), *dims(200, 200, 200))
    return medical_folder(root, "scan.nii", data), "sub-01/T1/scan.nii announces", "more than"


def nifti_extension_bomb(root: Path) -> tuple[Path, str, str]:
    # Extension flag set, first extension of size 7: nibabel.load reads "to the end",
    # inflating the whole stream into memory (600 MiB for a 300 KiB file).
    head = bytearray(nifti_bytes()[:352])
    head[348] = 1
    struct.pack_into("<f", head, 108, 1 << 20)  # vox_offset: 1 MiB of "extensions"
    data = bounded_bomb(bytes(head) + struct.pack("<ii", 7, 0), 0, inflated_mib=32)
    return medical_folder(root, "scan.nii.gz", data), "sub-01/T1/scan.nii.gz", "extension"


def nifti_extension_offset_absurd(root: Path) -> tuple[Path, str, str]:
    head = bytearray(nifti_bytes())
    head[348] = 1
    struct.pack_into("<f", head, 108, 3e9)
    data = gzip.compress(bytes(head))
    return medical_folder(root, "scan.nii.gz", data), "sub-01/T1/scan.nii.gz", "extensions"


def nifti_data_bomb(root: Path) -> tuple[Path, str, str]:
    # A correct 8-voxel header, then a stream that goes on for 256 MiB.
    data = bounded_bomb(nifti_bytes(), 0, inflated_mib=32)
    folder = medical_folder(root, "scan.nii.gz", data)
    return folder, "sub-01/T1/scan.nii.gz decompresses to far more", "header announces"


NIFTI_CASES: dict[str, NiftiCase] = {
    "NIfTI dims product past int64": nifti_dims_overflow,
    "NIfTI negative dimension": nifti_negative_dim,
    "NIfTI unknown datatype code": nifti_unknown_dtype,
    "NIfTI claims more voxels than bytes": nifti_more_voxels_than_bytes,
    "NIfTI gz extension bomb": nifti_extension_bomb,
    "NIfTI gz absurd extension offset": nifti_extension_offset_absurd,
    "NIfTI gz data bomb": nifti_data_bomb,
}


@pytest.mark.parametrize("case", sorted(NIFTI_CASES))
def test_forged_nifti_header_is_refused(node: NodeCli, tmp_path: Path, case: str) -> None:
    root, names, says = NIFTI_CASES[case](tmp_path / "forged")
    good = medical_folder(tmp_path / "good", "scan.nii.gz", gzip.compress(nifti_bytes()))
    assert_refused_and_node_unchanged(node, "medical-folder", root, names, says, good)


# --- image folders -------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A valid grayscale PNG declaring width x height, all zeros: a few KiB that Pillow
    would decode into width x height bytes."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    idat = b"".join(compressor.compress(row) for _ in range(min(height, 64)))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat + compressor.flush())
        + png_chunk(b"IEND", b"")
    )


def image_bytes(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def image_folder(root: Path, name: str, data: bytes) -> Path:
    (root / "cats").mkdir(parents=True)
    (root / "dogs").mkdir()
    (root / "cats" / "fine.png").write_bytes(image_bytes("PNG"))
    (root / "dogs" / name).write_bytes(data)
    return root


IMAGE_CASES: dict[str, tuple[str, Callable[[], bytes], str]] = {
    "PNG bomb 30000x30000": ("bomb.png", lambda: png_bomb(30000, 30000), "pixels, more than"),
    "PNG 9000x9000 (our limit, under Pillow's own)": (
        "big.png",
        lambda: png_bomb(9000, 9000),
        "declares 9000 x 9000 pixels",
    ),
    "truncated PNG": ("cut.png", lambda: image_bytes("PNG")[:-200], "not a readable image"),
    "truncated JPEG": ("cut.jpg", lambda: image_bytes("JPEG")[:-300], "not a readable image"),
    "PNG with a broken header": (
        "crc.png",
        lambda: image_bytes("PNG")[:16] + b"\xff\xff" + image_bytes("PNG")[18:],
        "not a readable image",
    ),
}


@pytest.mark.filterwarnings("error")  # Pillow's DecompressionBombWarning included
@pytest.mark.parametrize("case", sorted(IMAGE_CASES))
def test_forged_image_is_refused(node: NodeCli, tmp_path: Path, case: str) -> None:
    name, make, says = IMAGE_CASES[case]
    root = image_folder(tmp_path / "forged", name, make())
    good = image_folder(tmp_path / "good", "fine.jpg", image_bytes("JPEG"))
    assert_refused_and_node_unchanged(node, "images", root, f"dogs/{name}", says, good)


def test_the_shell_gets_the_message_and_exit_code_without_a_traceback(tmp_path: Path) -> None:
    root = image_folder(tmp_path / "forged", "bomb.png", png_bomb(30000, 30000))
    node = ["node", "--node-id", "n1", "--state-dir", str(tmp_path / "state")]
    add = ["dataset", "add", "--type", "images", "--path", str(root), "--name", "x", "--tags", "t"]
    done = subprocess.run(
        [sys.executable, "-m", "fedward.cli", *node, *add],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == DatasetError.exit_code
    assert "dogs/bomb.png declares" in done.stderr
    assert "Traceback" not in done.stderr
