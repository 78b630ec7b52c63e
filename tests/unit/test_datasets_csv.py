from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedward.errors import DatasetError
from fedward.learning.datasets import DATASET_TYPES, inspect_csv, load_csv_xy


def write(tmp_path: Path, text: str, name: str = "table.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    rows = ["age", "weight", "label"], ["30", "70.5", "0"], ["41", "82.0", "1"], ["25", "60", "0"]
    path = write(tmp_path, "\n".join(delimiter.join(r) for r in rows) + "\n")
    info = inspect_csv(path)
    assert info.delimiter == delimiter
    assert info.columns == ["age", "weight", "label"]
    assert info.shape == (3, 3)
    assert info.sample_count == 3
    assert info.dtypes == {"age": "int64", "weight": "float64", "label": "int64"}


def test_table_without_header_gets_numbered_columns(tmp_path: Path) -> None:
    info = inspect_csv(write(tmp_path, "1,2.5,0\n3,4.5,1\n"))
    assert not info.has_header
    assert info.columns == ["column_0", "column_1", "column_2"]
    assert info.shape == (2, 3)


def test_single_column_file_reads_without_delimiter(tmp_path: Path) -> None:
    info = inspect_csv(write(tmp_path, "value\n1\n2\n3\n"))
    assert info.columns == ["value"]
    assert info.sample_count == 3


def test_missing_values_are_counted_and_turn_int_columns_into_float(tmp_path: Path) -> None:
    info = inspect_csv(write(tmp_path, "a,b,c\n1,,x\n2,NA,y\n3,4,\n"))
    assert info.dtypes == {"a": "int64", "b": "float64", "c": "object"}
    assert info.missing_counts == {"a": 0, "b": 2, "c": 1}


def test_quoted_fields_and_byte_order_mark_are_handled(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b'\xef\xbb\xbfname,score\n"Doe, John",1.5\n"Roe, Jane",2.5\n')
    info = inspect_csv(path)
    assert info.columns == ["name", "score"]
    assert info.first_rows[0] == ["Doe, John", "1.5"]


def test_registry_inspect_gives_a_preview_with_first_rows(tmp_path: Path) -> None:
    body = "x,y\n" + "".join(f"{i},{i * 2}\n" for i in range(20))
    info = DATASET_TYPES["csv"].inspect(write(tmp_path, body))
    assert info.shape == [20, 2]
    assert info.sample_count == 20
    assert info.preview["columns"] == ["x", "y"]
    assert info.preview["rows"][:2] == [["0", "0"], ["1", "2"]]
    assert len(info.preview["rows"]) == 5


def test_load_csv_xy_uses_the_last_column_as_target_by_default(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,label\n1,2.5,0\n3,,1\n")
    features, target, names = load_csv_xy(path)
    assert names == ["a", "b"]
    assert features.dtype == np.float64
    np.testing.assert_array_equal(features, [[1.0, 2.5], [3.0, np.nan]])
    assert target.dtype == np.int64
    assert target.tolist() == [0, 1]


def test_load_csv_xy_by_target_name_or_index_with_text_labels(tmp_path: Path) -> None:
    path = write(tmp_path, "diagnosis;r;t\nbenign;1.0;2\nmalignant;3.5;4\n")
    features, target, names = load_csv_xy(path, target_column="diagnosis")
    assert names == ["r", "t"]
    assert target.tolist() == ["benign", "malignant"]
    assert features.tolist() == [[1.0, 2.0], [3.5, 4.0]]
    _, by_index, _ = load_csv_xy(path, target_column=0)
    assert by_index.tolist() == target.tolist()
    _, negative_index, _ = load_csv_xy(path, target_column=-3)
    assert negative_index.tolist() == target.tolist()


def test_text_feature_column_is_refused_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, "city,x,y\nparis,1,0\nrome,2,1\n")
    with pytest.raises(DatasetError, match=r"feature column.*city.*hold text"):
        load_csv_xy(path)


def test_unknown_target_column_is_refused_with_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b\n1,2\n")
    with pytest.raises(DatasetError, match="no column 'label'") as caught:
        load_csv_xy(path, target_column="label")
    assert "a, b" in str(caught.value)
    with pytest.raises(DatasetError, match="out of range"):
        load_csv_xy(path, target_column=5)


def test_missing_target_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="target column 'y' has 1 missing"):
        load_csv_xy(write(tmp_path, "x,y\n1,0\n2,\n"))


def test_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        inspect_csv(tmp_path / "absent.csv")


def test_folder_given_as_csv_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is a folder"):
        inspect_csv(tmp_path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="is empty"):
        inspect_csv(write(tmp_path, ""))
    with pytest.raises(DatasetError, match="is empty"):
        inspect_csv(write(tmp_path, "\n\n  \n", "blank.csv"))


def test_header_with_no_rows_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="header but no data rows"):
        inspect_csv(write(tmp_path, "age,weight,label\n"))


def test_binary_content_is_refused_as_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "image.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(DatasetError, match=r"binary data|not UTF-8"):
        inspect_csv(path)


def test_ragged_rows_are_refused_with_their_line(tmp_path: Path) -> None:
    body = "a,b,c\n" + "1,2,3\n" * 5 + "4,5\n"
    with pytest.raises(DatasetError, match="line 7 has 2 fields, expected 3"):
        inspect_csv(write(tmp_path, body))


def test_duplicate_column_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="two columns named 'a'"):
        inspect_csv(write(tmp_path, "a,a,b\n1,2,3\n"))


def test_unknown_option_is_refused_by_the_registry(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="do not accept option"):
        DATASET_TYPES["csv"].inspect(write(tmp_path, "a\n1\n"), demographics="x.csv")
