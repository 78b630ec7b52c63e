"""Properties of dataset files a node admin adds: CSV, the dataset JSON, IDX, NIfTI.

- A numeric table written with any of the sniffed delimiters, with or without a header,
  reads back with its shape, its header and its values; any bytes are a table or a
  ``DatasetError``.
- The dataset JSON: any JSON value, any bytes, gives a dataset or a ``DatasetError``
  (``ValidationError`` / ``Conflict`` for tags).
- IDX: any array written as IDX reads back with its shape, dtype and values; any
  damage to it is read the same or refused with a ``DatasetError``.
- NIfTI: any damage to a valid header is read or refused with a ``DatasetError``.
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedward.learning.datasets.csv_table import inspect_csv, load_csv_xy
from fedward.learning.datasets.mnist import read_idx, read_idx_header
from tests.fuzz.seeds import seeds
from tests.fuzz.targets import csv_table, dataset_json, idx_file, nifti_file


@given(
    table=hnp.arrays(
        np.int64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
        elements=st.integers(-(10**12), 10**12),
    ),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    header=st.booleans(),
)
def test_a_numeric_table_reads_back_with_its_shape_header_and_values(
    table: np.ndarray, delimiter: str, header: bool, tmp_path: Path
) -> None:
    rows, columns = table.shape
    names = [f"col{i}" for i in range(columns)]
    lines = [delimiter.join(names)] if header else []
    lines += [delimiter.join(str(v) for v in row) for row in table]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    info = inspect_csv(path)
    assert info.shape == (rows, columns)
    if columns > 1:
        assert info.delimiter == delimiter
    if header:
        assert info.has_header and info.columns == names
    x, y, _ = load_csv_xy(path)
    assert np.array_equal(x, table[:, :-1].astype(np.float64))
    assert np.array_equal(y, table[:, -1])


@given(data=st.binary(max_size=600))
def test_any_bytes_are_a_table_or_a_dataset_error(data: bytes) -> None:
    csv_table(data)


@given(
    cells=st.lists(
        st.lists(st.text(max_size=8) | st.integers().map(str), min_size=1, max_size=4),
        min_size=1,
        max_size=5,
    ),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
)
def test_a_table_of_any_cells_is_read_or_refused(cells: list[list[str]], delimiter: str) -> None:
    csv_table("\n".join(delimiter.join(row) for row in cells).encode("utf-8", "surrogatepass"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    spec=st.dictionaries(
        st.sampled_from(["data_type", "path", "name", "tags", "description", "options", "x"]),
        json_values,
    )
)
def test_a_dataset_json_with_any_values_adds_a_dataset_or_is_refused(
    spec: dict[str, object],
) -> None:
    dataset_json(json.dumps(spec).encode())


@given(data=st.binary(max_size=300))
def test_any_bytes_are_a_dataset_json_or_refused(data: bytes) -> None:
    dataset_json(data)


IDX_DTYPES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C}


@given(
    array=st.sampled_from(sorted(IDX_DTYPES, key=str)).flatmap(
        lambda dtype: hnp.arrays(
            dtype, hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)
        )
    ),
    compressed=st.booleans(),
)
def test_an_idx_array_reads_back_exactly(
    array: np.ndarray, compressed: bool, tmp_path: Path
) -> None:
    head = struct.pack(">4B", 0, 0, IDX_DTYPES[array.dtype.type], array.ndim)
    data = (
        head
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.astype(array.dtype.newbyteorder(">")).tobytes()
    )
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(gzip.compress(data) if compressed else data)
    assert read_idx_header(path).shape == array.shape
    assert np.array_equal(read_idx(path), array)


def _damaged(original: bytes, draw: st.DataObject) -> bytes:
    at = draw.draw(st.integers(0, len(original) - 1))
    kind = draw.draw(st.sampled_from(["cut", "byte", "int32"]))
    if kind == "cut":
        return original[:at]
    if kind == "byte":
        return original[:at] + bytes([draw.draw(st.integers(0, 255))]) + original[at + 1 :]
    value = struct.pack("<i", draw.draw(st.integers(-(2**31), 2**31 - 1)))
    return original[:at] + value + original[at + 4 :]


@pytest.mark.parametrize("which", range(4))
@given(draw=st.data())
def test_a_damaged_idx_file_is_read_or_refused(which: int, draw: st.DataObject) -> None:
    idx_file(_damaged(seeds("idx_file")[which], draw))


@pytest.mark.parametrize("which", range(3))
@given(draw=st.data())
def test_a_damaged_nifti_file_is_read_or_refused(which: int, draw: st.DataObject) -> None:
    nifti_file(_damaged(seeds("nifti_file")[which], draw))
