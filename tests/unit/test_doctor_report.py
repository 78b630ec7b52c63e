"""The doctor's report: rows, fixes under failures, skips after a failed prerequisite,
exit status and JSON; and the job worker's view of file permissions."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.doctor.host_checks import worker_can_read
from fedward.doctor.outcome import Check, Outcome, failed, passed, run_checks
from fedward.errors import TransportError

NOBODY = (65534, 65534)


def _broken() -> Outcome:
    raise TransportError("no route to 10.220.0.2", hint="connect the VPN first")


def test_a_failure_prints_its_fix_and_skips_what_depends_on_it() -> None:
    report = run_checks(
        "node n1",
        [
            Check("interface", lambda: passed("wg0 is up")),
            Check("ping", lambda: failed("no answer", "fedward vpn add node n1 KEY")),
            Check("broker", lambda: passed("never run"), needs=("ping",)),
            Check("topics", lambda: passed("never run"), needs=("broker",)),
            Check("disk", lambda: passed("9 GiB free")),
        ],
    )
    lines = report.as_table().splitlines()
    assert lines[0] == "fedward doctor: node n1"
    assert lines[1].split() == ["✔", "interface", "wg0", "is", "up"]
    assert lines[2].split()[:2] == ["✘", "ping"]
    assert lines[3].strip() == "fix: fedward vpn add node n1 KEY"
    assert lines[4].split()[:2] == ["○", "broker"] and "'ping' failed" in lines[4]
    assert lines[5].split()[:2] == ["○", "topics"] and "'ping' failed" in lines[5]
    assert lines[-1] == "1 of 3 checks failed"
    assert not report.ok and report.exit_code == 1


def test_an_error_raised_by_a_check_is_its_finding_with_the_hint_as_fix() -> None:
    report = run_checks(
        "researcher r1", [Check("broker", _broken), Check("disk", lambda: passed("ok"))]
    )
    first, second = report.findings
    assert (first.status, first.detail, first.fix) == (
        "fail",
        "no route to 10.220.0.2",
        "connect the VPN first",
    )
    assert second.status == "ok"


def test_all_passed_exits_zero_and_json_says_the_same() -> None:
    report = run_checks("vpn server", [Check("a", lambda: passed("fine"))])
    assert report.ok and report.exit_code == 0
    assert report.as_table().splitlines()[-1] == "all 1 checks passed"
    data = json.loads(report.as_json())
    assert data == {
        "role": "vpn server",
        "ok": True,
        "checks": [{"check": "a", "status": "ok", "detail": "fine", "fix": ""}],
    }


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="fedward-doctor-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files for another user")
def test_the_worker_reads_by_mode_bits_of_the_file_and_every_folder_above(folder: Path) -> None:
    table = folder / "data" / "table.csv"
    table.parent.mkdir()
    table.write_text("a,b\n1,2\n")
    table.chmod(0o644)
    table.parent.chmod(0o755)
    assert worker_can_read(table, *NOBODY)
    table.chmod(0o600)  # root's file, closed to others
    assert not worker_can_read(table, *NOBODY)
    assert worker_can_read(table, 0, 0)
    table.chmod(0o644)
    table.parent.chmod(0o700)  # a folder nobody may enter
    assert not worker_can_read(table, *NOBODY)
    table.parent.chmod(0o755)
    assert worker_can_read(table.parent, *NOBODY)  # a folder: read and enter
    table.parent.chmod(0o744)
    assert not worker_can_read(table.parent, *NOBODY)
    assert not worker_can_read(folder / "missing.csv", 0, 0)


def test_a_damaged_enrolment_folder_is_one_failed_row_and_skips_the_network(
    tmp_path: Path,
) -> None:
    from fedward.config.model import ResearcherConfig
    from fedward.doctor.roles import researcher_checks

    folder = tmp_path / "alice"
    folder.mkdir()
    (folder / "config.env").write_text("VPN_IP=not-an-address\n")
    report = run_checks(
        "researcher alice", researcher_checks(ResearcherConfig("alice", tmp_path), folder)
    )
    statuses = {f.check: f.status for f in report.findings}
    assert statuses["vpn"] == "fail"
    assert {statuses[n] for n in ("broker login", "broker topics", "upload token", "clock")} == {
        "skip"
    }
    assert report.exit_code == 1
