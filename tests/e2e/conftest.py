"""A real federation on loopback for end-to-end tests: Mosquitto, upload server, node processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.demo.data import breast_cancer_split
from fedward.demo.local_federation import LocalFederation

TAGS = ["breast-cancer", "e2e"]


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    workdir = tmp_path_factory.mktemp("federation")
    node_ids = ["node1", "node2", "node3"]
    split = breast_cancer_split(workdir / "data", len(node_ids))
    fed = LocalFederation(workdir, node_ids=node_ids, max_blob_mb=8)
    fed.split = split  # type: ignore[attr-defined]
    fed.start()
    try:
        for node_id, path in zip(node_ids, split.node_files, strict=True):
            fed.add_dataset(node_id, data_type="csv", path=path, name="bc", tags=TAGS)
        fed.start_nodes()
        yield fed
    finally:
        fed.stop()


def data_dir(fed: LocalFederation) -> Path:
    return fed.workdir / "data"
