"""JobService (the job log) and AuditService (the security log)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fedward.errors import Conflict, NotFound, ValidationError
from fedward.node.services import AuditService, JobService
from fedward.storage.sqlite_audit import SqliteAuditStore
from fedward.storage.sqlite_database import SqliteDatabase
from fedward.storage.sqlite_jobs import SqliteJobStore

DIGEST = "sha256:" + "c" * 64


class StepClock:
    """A clock that moves forward by ``step_s`` each time it is read."""

    def __init__(self, step_s: float) -> None:
        self.now = datetime(2024, 1, 1, tzinfo=UTC)
        self.step = timedelta(seconds=step_s)

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


@pytest.fixture
def database(tmp_path: Path) -> Iterator[SqliteDatabase]:
    database = SqliteDatabase(tmp_path / "node.sqlite3")
    yield database
    database.close()


@pytest.fixture
def jobs(database: SqliteDatabase) -> JobService:
    return JobService(SqliteJobStore(database), clock=StepClock(2.5))


@pytest.fixture
def audit(database: SqliteDatabase) -> AuditService:
    return AuditService(SqliteAuditStore(database))


def test_job_is_recorded_from_start_to_finish_with_its_duration(jobs: JobService) -> None:
    job_id = jobs.start("exp-1", 3, "researcher-1", "dataset-1", DIGEST)
    running = jobs.get(job_id)
    assert (running.outcome, running.finished_at, running.duration_s) == ("running", None, None)
    assert (running.experiment_id, running.round_index, running.plan_digest) == ("exp-1", 3, DIGEST)
    done = jobs.finish(job_id, "succeeded", metrics={"accuracy": 0.91, "loss": 1})
    assert done.outcome == "succeeded"
    assert done.metrics == {"accuracy": 0.91, "loss": 1.0}
    assert done.duration_s is not None and done.duration_s > 0
    assert jobs.get(job_id) == done


@pytest.mark.parametrize("outcome", ["failed", "killed", "timeout"])
def test_failed_jobs_keep_their_message(jobs: JobService, outcome: str) -> None:
    job_id = jobs.start("exp-1", 0, "researcher-1", "dataset-1", DIGEST)
    record = jobs.finish(job_id, outcome, message="memory limit reached")  # type: ignore[arg-type]
    assert (record.outcome, record.message) == (outcome, "memory limit reached")


def test_finishing_twice_or_an_unknown_job_is_refused(jobs: JobService) -> None:
    job_id = jobs.start("exp-1", 0, "researcher-1", "dataset-1", DIGEST)
    jobs.finish(job_id, "succeeded")
    with pytest.raises(Conflict, match="already finished"):
        jobs.finish(job_id, "failed")
    assert jobs.get(job_id).outcome == "succeeded"
    with pytest.raises(NotFound):
        jobs.finish("job-missing", "failed")
    with pytest.raises(NotFound):
        jobs.get("job-missing")


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (("exp/1", 0, "r", "d", DIGEST), "experiment id"),
        (("exp", -1, "r", "d", DIGEST), "round index"),
        (("exp", 0, "r r", "d", DIGEST), "researcher id"),
        (("exp", 0, "r", "", DIGEST), "dataset id"),
    ],
)
def test_bad_job_fields_are_refused(jobs: JobService, arguments: tuple, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        jobs.start(*arguments)
    assert jobs.list() == []


def test_bad_outcome_or_metric_is_refused_and_the_job_stays_running(jobs: JobService) -> None:
    job_id = jobs.start("exp-1", 0, "researcher-1", "dataset-1", DIGEST)
    with pytest.raises(ValidationError, match="unknown job outcome"):
        jobs.finish(job_id, "exploded")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="not a number"):
        jobs.finish(job_id, "succeeded", metrics={"accuracy": "high"})  # type: ignore[dict-item]
    assert jobs.get(job_id).outcome == "running"


def test_jobs_are_listed_newest_first(jobs: JobService) -> None:
    ids = [jobs.start("exp-1", index, "researcher-1", "dataset-1", DIGEST) for index in range(5)]
    assert [record.job_id for record in jobs.list(limit=2)] == ids[:-3:-1]
    assert len(jobs.list()) == 5
    with pytest.raises(ValidationError):
        jobs.list(limit=0)


def test_jobs_left_running_by_a_stopped_node_are_closed(jobs: JobService) -> None:
    running = jobs.start("exp-1", 0, "researcher-1", "dataset-1", DIGEST)
    done = jobs.start("exp-1", 1, "researcher-1", "dataset-1", DIGEST)
    jobs.finish(done, "succeeded")
    assert jobs.finish_interrupted() == 1
    assert jobs.get(running).outcome == "killed"
    assert "stopped" in jobs.get(running).message
    assert jobs.get(done).outcome == "succeeded"


def test_every_job_start_and_end_is_in_the_audit_log(jobs: JobService, audit: AuditService) -> None:
    job_id = jobs.start("exp-1", 0, "researcher-1", "dataset-1", DIGEST)
    jobs.finish(job_id, "failed", message="deadline passed")
    finished, started = audit.list_events()
    assert (started.kind, started.actor, started.subject) == ("job_started", "researcher-1", job_id)
    assert DIGEST in started.detail and "dataset-1" in started.detail
    assert (finished.kind, finished.subject) == ("job_finished", job_id)
    assert "deadline passed" in finished.detail


def test_other_components_record_their_own_events(audit: AuditService) -> None:
    event = audit.record("login_failed", "alice", "from 127.0.0.1")
    assert (event.kind, event.actor, event.detail) == ("login_failed", "alice", "from 127.0.0.1")
    assert audit.list_events(kind="login_failed") == [event]
    assert audit.list_events(kind="plan_decision") == []


@pytest.mark.parametrize(("kind", "actor"), [("", "a"), ("has space", "a"), ("login", "")])
def test_malformed_audit_events_are_refused(audit: AuditService, kind: str, actor: str) -> None:
    with pytest.raises(ValidationError):
        audit.record(kind, actor, "detail")
    assert audit.list_events() == []
