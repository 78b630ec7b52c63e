"""DatasetService rules: validation at add time, tag conflicts, search, from-file, preview.

After every refused input the whole database (datasets, tags, audit log) is unchanged.
"""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nibabel
import numpy as np
import pytest
from PIL import Image

from fedward.errors import DatasetError, NotFound, ValidationError
from fedward.node.services import NodeServices, open_node_services


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    return root


@pytest.fixture
def services(tmp_path: Path, data_root: Path) -> Iterator[NodeServices]:
    services = open_node_services(tmp_path / "state" / "node.sqlite3", data_root)
    yield services
    services.close()


def snapshot(services: NodeServices) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read with a connection of its own."""
    connection = sqlite3.connect(services.database.path)
    try:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall())
            for table in tables
        }
    finally:
        connection.close()


def write_csv(path: Path, rows: int = 4) -> Path:
    lines = ["age,weight,label"] + [f"{30 + i},{60.5 + i},{i % 2}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_images(root: Path) -> Path:
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for index in range(2):
            Image.new("L", (8, 8), color=index * 40).save(root / label / f"{index}.png")
    return root


def write_mnist(root: Path, count: int = 3) -> Path:
    root.mkdir(parents=True)
    images = struct.pack(">HBBIII", 0, 0x08, 3, count, 4, 4) + bytes(count * 16)
    labels = struct.pack(">HBBI", 0, 0x08, 1, count) + bytes(range(count))
    (root / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (root / "train-labels-idx1-ubyte").write_bytes(labels)
    return root


def write_medical_folder(root: Path, subjects: int = 2) -> Path:
    for index in range(subjects):
        for modality in ("T1", "T2"):
            folder = root / f"subject-{index}" / modality
            folder.mkdir(parents=True)
            image = nibabel.Nifti1Image(np.zeros((4, 4, 3), dtype=np.float32), np.eye(4))
            nibabel.save(image, folder / "scan.nii.gz")
    return root


# --- adding ---------------------------------------------------------------------------------


def test_csv_dataset_is_added_with_its_shape_dtypes_and_count(
    services: NodeServices, data_root: Path
) -> None:
    record = services.datasets.add(
        "csv", write_csv(data_root / "t.csv"), "Table", "cancer, breast", "demo data"
    )
    assert record.tags == ["cancer", "breast"]
    assert record.shape == [4, 3]
    assert record.sample_count == 4
    assert set(record.dtypes) == {"age", "weight", "label"}
    assert record.path == (data_root / "t.csv").resolve()
    assert services.datasets.get(record.dataset_id) == record
    assert services.datasets.list() == [record]
    kinds = [event.kind for event in services.audit.list_events()]
    assert kinds == ["dataset_added"]


@pytest.mark.parametrize(
    ("data_type", "writer", "samples"),
    [
        ("images", write_images, 4),
        ("mnist", write_mnist, 3),
        ("medical-folder", write_medical_folder, 2),
    ],
)
def test_every_dataset_type_can_be_added(
    services: NodeServices, data_root: Path, data_type: str, writer: Any, samples: int
) -> None:
    record = services.datasets.add(data_type, writer(data_root / "set"), "Set", ["kind"])
    assert record.sample_count == samples
    assert services.datasets.preview(record.dataset_id)["sample_count"] == samples


def test_medical_folder_demographics_option_is_resolved_and_kept(
    services: NodeServices, data_root: Path
) -> None:
    folder = write_medical_folder(data_root / "brains")
    (data_root / "demo.csv").write_text("id,age\nsubject-0,40\nsubject-1,50\n")
    record = services.datasets.add(
        "medical-folder",
        folder,
        "Brains",
        ["mri"],
        options={"demographics": str(data_root / "demo.csv"), "index_column": "id"},
    )
    assert record.options == {
        "demographics": str((data_root / "demo.csv").resolve()),
        "index_column": "id",
    }
    assert services.datasets.preview(record.dataset_id)["demographics_columns"] == ["id", "age"]


def test_summary_never_carries_the_path(services: NodeServices, data_root: Path) -> None:
    record = services.datasets.add("csv", write_csv(data_root / "secret-ward-7.csv"), "T", ["a"])
    encoded = msgspec.json.encode(record.summary())
    assert b"secret-ward-7" not in encoded
    assert not hasattr(record.summary(), "path")
    assert record.summary().sample_count == 4


# --- bad input: each refused with a clear error, registry unchanged ---------------------------


def assert_refused(
    services: NodeServices, match: str, call: Any, *args: Any, **kwargs: Any
) -> None:
    before = snapshot(services)
    with pytest.raises(DatasetError, match=match):
        call(*args, **kwargs)
    assert snapshot(services) == before


@pytest.fixture
def populated(services: NodeServices, data_root: Path) -> NodeServices:
    services.datasets.add("csv", write_csv(data_root / "base.csv"), "Base", ["cancer", "breast"])
    return services


def test_missing_path_is_refused(populated: NodeServices, data_root: Path) -> None:
    assert_refused(
        populated, "does not exist", populated.datasets.add, "csv", data_root / "no.csv", "N", ["x"]
    )


def test_csv_with_a_header_and_no_rows_is_refused(populated: NodeServices, data_root: Path) -> None:
    path = data_root / "header-only.csv"
    path.write_text("a,b,c\n")
    assert_refused(populated, "row", populated.datasets.add, "csv", path, "N", ["x"])


def test_empty_file_is_refused(populated: NodeServices, data_root: Path) -> None:
    path = data_root / "empty.csv"
    path.write_text("")
    assert_refused(populated, "empty", populated.datasets.add, "csv", path, "N", ["x"])


def test_empty_folder_is_refused(populated: NodeServices, data_root: Path) -> None:
    (data_root / "nothing").mkdir()
    assert_refused(
        populated, "empty", populated.datasets.add, "images", data_root / "nothing", "N", ["x"]
    )


def test_content_of_another_type_is_refused(populated: NodeServices, data_root: Path) -> None:
    csv_file = write_csv(data_root / "t.csv")
    images = write_images(data_root / "pictures")
    assert_refused(populated, "folder", populated.datasets.add, "images", csv_file, "N", ["x"])
    assert_refused(populated, "folder", populated.datasets.add, "csv", images, "N", ["y"])
    assert_refused(
        populated, "idx|IDX|MNIST|mnist", populated.datasets.add, "mnist", images, "N", ["z"]
    )


def test_corrupt_nifti_is_refused(populated: NodeServices, data_root: Path) -> None:
    folder = write_medical_folder(data_root / "brains")
    scan = folder / "subject-1" / "T2" / "scan.nii.gz"
    scan.write_bytes(scan.read_bytes()[:60])
    assert_refused(
        populated, "scan.nii.gz", populated.datasets.add, "medical-folder", folder, "N", ["x"]
    )


def test_unknown_type_is_refused(populated: NodeServices, data_root: Path) -> None:
    path = write_csv(data_root / "t.csv")
    assert_refused(
        populated, "unknown dataset type", populated.datasets.add, "xls", path, "N", ["x"]
    )


@pytest.mark.parametrize(
    ("tags", "relation"),
    [
        (["cancer", "breast"], "the same as"),
        (["cancer"], "a subset of"),
        (["breast", "cancer", "2024"], "a superset of"),
    ],
)
def test_tags_that_nest_with_another_datasets_tags_are_refused(
    populated: NodeServices, data_root: Path, tags: list[str], relation: str
) -> None:
    path = write_csv(data_root / "t.csv")
    assert_refused(populated, relation, populated.datasets.add, "csv", path, "N", tags)


def test_tags_that_only_overlap_are_accepted(populated: NodeServices, data_root: Path) -> None:
    record = populated.datasets.add("csv", write_csv(data_root / "t.csv"), "N", ["cancer", "lung"])
    assert record.tags == ["cancer", "lung"]


@pytest.mark.parametrize(
    "tags", ["", " , ", ["bad,tag"], ["x" * 65], ["tab\there"], ["del\x7f"], ["csi\x9b31m"]]
)
def test_invalid_tags_are_refused(populated: NodeServices, data_root: Path, tags: Any) -> None:
    path = write_csv(data_root / "t.csv")
    assert_refused(populated, "tag", populated.datasets.add, "csv", path, "N", tags)


# What a node tells researchers reaches their terminals: no escape sequences in it.
@pytest.mark.parametrize(
    ("name", "description", "field"),
    [
        ("Breast\x1b[2J", "", "name"),
        ("two\nlines", "", "name"),
        ("N", "clears the screen \x1b[2J", "description"),
        ("N", "right-to-left \u202e override", "description"),
    ],
)
def test_control_characters_in_a_name_or_description_are_refused(
    populated: NodeServices, data_root: Path, name: str, description: str, field: str
) -> None:
    path = write_csv(data_root / "t.csv")
    add = populated.datasets.add
    assert_refused(populated, field, add, "csv", path, name, ["x"], description)


def test_a_description_may_span_lines(populated: NodeServices, data_root: Path) -> None:
    path = write_csv(data_root / "t.csv")
    record = populated.datasets.add("csv", path, "N", ["x"], "first line\r\n\tsecond line")
    assert record.description == "first line\r\n\tsecond line"


def test_empty_name_is_refused(populated: NodeServices, data_root: Path) -> None:
    path = write_csv(data_root / "t.csv")
    assert_refused(populated, "name", populated.datasets.add, "csv", path, "  ", ["x"])


def test_path_outside_the_data_root_is_refused(
    populated: NodeServices, data_root: Path, tmp_path: Path
) -> None:
    outside = write_csv(tmp_path / "outside.csv")
    add = populated.datasets.add
    assert_refused(populated, "outside the data root", add, "csv", outside, "N", ["x"])
    dotted = data_root / ".." / "outside.csv"
    assert_refused(populated, "outside the data root", add, "csv", dotted, "N", ["x"])
    link = data_root / "innocent.csv"
    link.symlink_to(outside)
    assert_refused(populated, "outside the data root", add, "csv", link, "N", ["x"])


def test_a_file_option_outside_the_data_root_is_refused(
    populated: NodeServices, data_root: Path, tmp_path: Path
) -> None:
    folder = write_medical_folder(data_root / "brains")
    demographics = tmp_path / "demographics.csv"
    demographics.write_text("id,age\nsubject-0,40\n")
    assert_refused(
        populated,
        "outside the data root",
        populated.datasets.add,
        "medical-folder",
        folder,
        "N",
        ["mri"],
        options={"demographics": str(demographics)},
    )


def test_a_dataset_swapped_outside_the_root_after_adding_is_refused_at_use(
    services: NodeServices, data_root: Path, tmp_path: Path
) -> None:
    real = write_csv(data_root / "real.csv")
    link = data_root / "current.csv"
    link.symlink_to(real)
    record = services.datasets.add("csv", link, "N", ["x"])
    assert services.datasets.checked_path(record.dataset_id) == real.resolve()
    real.unlink()
    with pytest.raises(DatasetError, match="does not exist"):
        services.datasets.checked(record.dataset_id)


# --- from file ------------------------------------------------------------------------------


def write_spec(spec_file: Path, **spec: Any) -> Path:
    spec_file.write_text(json.dumps(spec))
    return spec_file


def test_dataset_is_added_from_a_json_file_relative_to_it(
    services: NodeServices, data_root: Path
) -> None:
    write_csv(data_root / "t.csv")
    spec = write_spec(
        data_root / "spec.json",
        data_type="csv",
        path="t.csv",
        name="From file",
        tags=["a", "b"],
        description="d",
    )
    record = services.datasets.add_from_file(spec)
    assert (record.name, record.tags, record.description) == ("From file", ["a", "b"], "d")
    assert record.path == (data_root / "t.csv").resolve()


def test_from_file_with_unknown_keys_is_refused(populated: NodeServices, data_root: Path) -> None:
    write_csv(data_root / "t.csv")
    spec = write_spec(
        data_root / "spec.json", data_type="csv", path="t.csv", name="N", tags="x", colour="red"
    )
    assert_refused(populated, "unknown key", populated.datasets.add_from_file, spec)


def test_from_file_pointing_outside_the_data_root_is_refused(
    populated: NodeServices, data_root: Path, tmp_path: Path
) -> None:
    write_csv(tmp_path / "outside.csv")
    spec = write_spec(
        data_root / "spec.json", data_type="csv", path="../outside.csv", name="N", tags="x"
    )
    assert_refused(populated, "outside the data root", populated.datasets.add_from_file, spec)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"data_type": "csv", "path": "t.csv", "name": "N"}', "missing key"),
        ('{"data_type": "csv", "path": "t.csv", "name": "N", "tags": 3}', "tags"),
        ('{"data_type": "csv", "path": 7, "name": "N", "tags": "x"}', "must be a string"),
    ],
)
def test_malformed_from_file_json_is_refused(
    populated: NodeServices, data_root: Path, content: str, match: str
) -> None:
    write_csv(data_root / "t.csv")
    spec = data_root / "spec.json"
    spec.write_text(content)
    assert_refused(populated, match, populated.datasets.add_from_file, spec)


def test_missing_from_file_json_is_refused(populated: NodeServices, data_root: Path) -> None:
    assert_refused(
        populated, "cannot read", populated.datasets.add_from_file, data_root / "none.json"
    )


# --- reading and deleting -------------------------------------------------------------------


def test_search_returns_datasets_carrying_every_requested_tag(
    services: NodeServices, data_root: Path
) -> None:
    path = write_csv(data_root / "t.csv")
    breast = services.datasets.add("csv", path, "B", ["cancer", "breast"])
    lung = services.datasets.add("csv", path, "L", ["cancer", "lung"])
    assert services.datasets.search(["cancer"]) == [breast, lung]
    assert services.datasets.search(["cancer", "lung"]) == [lung]
    assert services.datasets.search(["lung", "breast"]) == []


def test_preview_shows_first_rows(services: NodeServices, data_root: Path) -> None:
    record = services.datasets.add("csv", write_csv(data_root / "t.csv", rows=20), "T", ["a"])
    preview = services.datasets.preview(record.dataset_id)
    assert preview["shape"] == [20, 3]
    assert preview["sample_count"] == 20
    assert preview["columns"] == ["age", "weight", "label"]
    assert 0 < len(preview["rows"]) < 20


def test_unknown_dataset_id_is_not_found_and_changes_nothing(populated: NodeServices) -> None:
    before = snapshot(populated)
    for call in (populated.datasets.get, populated.datasets.delete, populated.datasets.preview):
        with pytest.raises(NotFound, match="dataset-missing"):
            call("dataset-missing")
    with pytest.raises(ValidationError):
        populated.datasets.get("../etc")
    assert snapshot(populated) == before


def test_delete_removes_one_dataset_and_delete_all_the_rest(
    services: NodeServices, data_root: Path
) -> None:
    path = write_csv(data_root / "t.csv")
    first = services.datasets.add("csv", path, "1", ["one"])
    services.datasets.add("csv", path, "2", ["two"])
    services.datasets.add("csv", path, "3", ["three"])
    services.datasets.delete(first.dataset_id)
    assert [r.name for r in services.datasets.list()] == ["2", "3"]
    assert services.datasets.search(["one"]) == []
    assert services.datasets.delete_all() == 2
    assert services.datasets.list() == []
    # The data itself stays where it is.
    assert path.exists()
    assert os.access(path, os.R_OK)
