"""The daemon's heartbeat file: online while fresh, offline when stale or stopped."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fedward.node.services import NodeHeartbeat
from fedward.node.services.heartbeat import STALE_AFTER_S


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def moment(self, later_s: float = 0.0) -> datetime:
        return datetime.fromtimestamp(self.now + later_s, UTC)


def test_a_fresh_beat_is_online_and_carries_the_isolation_layers(tmp_path: Path) -> None:
    clock = FakeClock()
    heartbeat = NodeHeartbeat(tmp_path, clock=clock)
    assert heartbeat.read() is None
    heartbeat.beat(["landlock: job folder only", "seccomp: no network"])
    beat = heartbeat.read()
    assert beat is not None
    assert beat.isolation_layers == ["landlock: job folder only", "seccomp: no network"]
    assert beat.online(clock.moment(1))
    assert not beat.online(clock.moment(STALE_AFTER_S + 1))


def test_a_clean_stop_is_offline_at_once_and_unreported_layers_stay_unknown(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    heartbeat = NodeHeartbeat(tmp_path, clock=clock)
    heartbeat.beat()
    beat = heartbeat.read()
    assert beat is not None and beat.isolation_layers is None
    heartbeat.stopped()
    stopped = heartbeat.read()
    assert stopped is not None and not stopped.online(clock.moment())


def test_a_damaged_file_reads_as_no_heartbeat(tmp_path: Path) -> None:
    (tmp_path / "heartbeat.json").write_text('{"state": "running", "beat_at": "soon"')
    assert NodeHeartbeat(tmp_path).read() is None


def test_the_beating_thread_writes_and_says_stopped(tmp_path: Path) -> None:
    heartbeat = NodeHeartbeat(tmp_path)
    beating = heartbeat.start(["namespace: no network"], interval_s=0.05)
    beat = heartbeat.read()
    assert beat is not None and beat.running
    beating.stop()
    stopped = heartbeat.read()
    assert stopped is not None and not stopped.running
    assert stopped.isolation_layers == ["namespace: no network"]
