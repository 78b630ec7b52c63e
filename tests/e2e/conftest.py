"""A real federation on loopback for end-to-end tests: Mosquitto, upload server, node processes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fedward.demo.data import breast_cancer_split
from fedward.demo.local_federation import LocalFederation

TAGS = ["breast-cancer", "e2e"]


@contextmanager
def breast_cancer_federation(
    workdir: Path, node_ids: Sequence[str], tags: Sequence[str], **options: Any
) -> Iterator[LocalFederation]:
    """A started federation whose nodes each hold a share of the breast-cancer table.

    ``fed.split`` keeps the split (node files and the held-out test set).
    """
    split = breast_cancer_split(workdir / "data", len(node_ids))
    fed = LocalFederation(workdir, node_ids=list(node_ids), **options)
    fed.split = split  # type: ignore[attr-defined]
    fed.start()
    try:
        for node_id, path in zip(node_ids, split.node_files, strict=True):
            fed.add_dataset(node_id, data_type="csv", path=path, name="bc", tags=tags)
        fed.start_nodes()
        yield fed
    finally:
        fed.stop()


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFederation]:
    workdir = tmp_path_factory.mktemp("federation")
    with breast_cancer_federation(workdir, ["node1", "node2", "node3"], TAGS, max_blob_mb=8) as fed:
        yield fed
