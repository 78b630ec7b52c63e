from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import msgspec
import pytest

from fedward.errors import DatasetError
from fedward.learning.datasets import DATASET_TYPES, dataset_type, inspect_dataset


def test_registry_offers_the_four_seed_types() -> None:
    assert set(DATASET_TYPES) == {"csv", "images", "mnist", "medical-folder"}
    assert all(kind.description for kind in DATASET_TYPES.values())


def test_unknown_type_is_refused_listing_known_ones() -> None:
    with pytest.raises(DatasetError, match="unknown dataset type 'parquet'") as caught:
        dataset_type("parquet")
    assert "medical-folder" in str(caught.value)


@pytest.mark.parametrize("data_type", ["mnist", "images", "medical-folder"])
def test_a_csv_file_is_refused_by_folder_types(tmp_path: Path, data_type: str) -> None:
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n")
    with pytest.raises(DatasetError, match="is a file"):
        inspect_dataset(data_type, table)


def test_dataset_info_is_json_ready(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n3,\n")
    info = inspect_dataset("csv", table)
    assert msgspec.json.decode(msgspec.json.encode(asdict(info))) == asdict(info)
