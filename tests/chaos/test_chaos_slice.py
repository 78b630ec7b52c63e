"""The chaos scenarios, CI-sized: fewer rounds and faults, the same checks.

``make chaos`` runs them at full size (``tests/chaos/run.py``); here each must hold in
``make test``. Every scenario starts its own federation on loopback; the disk-full one
mounts tmpfs, so it needs root (CI runs as root).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos import scenarios
from tests.chaos.scenarios import Row


def check(row: Row) -> None:
    print(f"{row.scenario}: {row.observed}")
    assert row.ok, f"{row.scenario}: expected {row.expected}; observed {row.observed}"


@pytest.mark.timeout(120)
def test_a_broker_killed_twice_mid_round_loses_and_doubles_no_update(tmp_path: Path) -> None:
    check(scenarios.broker_killed(tmp_path, rounds=4, kills=2))


@pytest.mark.timeout(120)
def test_duplicated_and_reordered_messages_leave_the_model_bit_identical(tmp_path: Path) -> None:
    check(scenarios.duplicated_and_reordered(tmp_path, rounds=3))


@pytest.mark.timeout(180)
def test_a_node_killed_in_each_round_leaves_the_survivors_aggregate(tmp_path: Path) -> None:
    check(scenarios.node_killed_each_round(tmp_path, rounds=2))


@pytest.mark.timeout(120)
def test_an_upload_server_killed_mid_transfer_is_retried_and_nothing_corrupt_is_read(
    tmp_path: Path,
) -> None:
    check(scenarios.uploads_killed(tmp_path, size_mb=8))


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="mounts tmpfs: needs root (CI runs as root)")
@pytest.mark.timeout(120)
def test_full_disks_give_clear_errors_and_service_resumes(tmp_path: Path) -> None:
    check(scenarios.disk_full(tmp_path))


@pytest.mark.timeout(180)
def test_a_researcher_killed_and_resumed_ends_bit_identical(tmp_path: Path) -> None:
    check(scenarios.researcher_killed(tmp_path, kills=2, rounds=6))
