"""Lab fixtures: a real lab (namespaces, wireguard-go, Mosquitto, upload server), as root.

Lab tests run in CI (root). They are skipped only on a developer machine that is not
root and has no ``CI`` variable; in CI a missing privilege is a failure, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_harness import Lab, leftovers

from fedward.lab.deploy import lab_down, lab_up

NODES = 3


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0 or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="lab tests need root (they run in CI, which has it)")
    here = Path(__file__).parent
    for item in items:
        if "root" in item.keywords and here in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab_dir = tmp_path_factory.mktemp("lab") / "lab"
    try:
        state = lab_up(lab_dir, NODES)
    except BaseException:
        lab_down(lab_dir)
        raise
    try:
        yield Lab(state)
    finally:
        assert lab_down(lab_dir) == []
        assert leftovers(state.topology.prefix, lab_dir) == []
        assert not lab_dir.exists()
