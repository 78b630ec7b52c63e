"""The SQLite stores keep the MUST rules of ``fedward.storage.node_stores``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fedward.errors import Conflict, NotFound
from fedward.storage.node_records import AuditEntry, DatasetRecord, JobRecord, PlanRecord
from fedward.storage.node_stores import PlanChange
from fedward.storage.sqlite_audit import SqliteAuditStore
from fedward.storage.sqlite_database import SqliteDatabase
from fedward.storage.sqlite_datasets import SqliteDatasetStore
from fedward.storage.sqlite_jobs import SqliteJobStore
from fedward.storage.sqlite_plans import SqlitePlanStore

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[SqliteDatabase]:
    database = SqliteDatabase(tmp_path / "node.sqlite3")
    yield database
    database.close()


def audit(kind: str = "test") -> AuditEntry:
    return AuditEntry(at=T0, kind=kind, actor="tester")


def dataset(dataset_id: str, tags: list[str], minute: int = 0) -> DatasetRecord:
    return DatasetRecord(
        dataset_id=dataset_id,
        name=f"name of {dataset_id}",
        data_type="csv",
        tags=tags,
        description="",
        path=Path(f"/data/{dataset_id}.csv"),
        shape=[10, 3],
        dtypes={"a": "int64"},
        sample_count=10,
        created_at=T0 + timedelta(minutes=minute),
        options={"demographics": "/data/x.csv"},
    )


def plan(plan_id: str, digest: str, status: str = "pending") -> PlanRecord:
    return PlanRecord(
        plan_id=plan_id,
        name="p",
        class_name="P",
        source="class P: pass",
        digest=digest,
        kind="registered",
        status=status,  # type: ignore[arg-type]
        created_at=T0,
        lineage_id=plan_id,  # a first version starts its own lineage
    )


def no_check(existing: Sequence[DatasetRecord]) -> None:
    pass


# --- datasets -------------------------------------------------------------------------------


def test_dataset_round_trips_with_tags_in_order(database: SqliteDatabase) -> None:
    store = SqliteDatasetStore(database)
    record = dataset("d1", ["zeta", "alpha", "mid"])
    store.add(record, no_check, audit())
    assert store.get("d1") == record
    assert store.list() == [record]
    assert store.get("missing") is None


def test_dataset_check_sees_existing_records_and_a_refusal_writes_nothing(
    database: SqliteDatabase,
) -> None:
    store = SqliteDatasetStore(database)
    audits = SqliteAuditStore(database)
    store.add(dataset("d1", ["a"]), no_check, audit())
    seen: list[list[str]] = []

    def refuse(existing: Sequence[DatasetRecord]) -> None:
        seen.append([r.dataset_id for r in existing])
        raise Conflict("refused by the check")

    with pytest.raises(Conflict, match="refused by the check"):
        store.add(dataset("d2", ["b"]), refuse, audit())
    assert seen == [["d1"]]
    assert [r.dataset_id for r in store.list()] == ["d1"]
    assert len(audits.list(10)) == 1


def test_duplicate_dataset_id_is_a_conflict(database: SqliteDatabase) -> None:
    store = SqliteDatasetStore(database)
    store.add(dataset("d1", ["a"]), no_check, audit())
    with pytest.raises(Conflict):
        store.add(dataset("d1", ["b"]), no_check, audit())
    assert store.get("d1") == dataset("d1", ["a"])


def test_search_returns_datasets_with_every_requested_tag(database: SqliteDatabase) -> None:
    store = SqliteDatasetStore(database)
    store.add(dataset("d1", ["cancer", "breast"], 0), no_check, audit())
    store.add(dataset("d2", ["cancer", "lung"], 1), no_check, audit())
    store.add(dataset("d3", ["heart"], 2), no_check, audit())
    ids = lambda tags: [r.dataset_id for r in store.search(tags)]  # noqa: E731
    assert ids(["cancer"]) == ["d1", "d2"]
    assert ids(["cancer", "lung"]) == ["d2"]
    assert ids(["lung", "breast"]) == []
    assert ids(["unknown"]) == []


def test_dataset_delete_removes_tags_and_reports_absence(database: SqliteDatabase) -> None:
    store = SqliteDatasetStore(database)
    audits = SqliteAuditStore(database)
    store.add(dataset("d1", ["a"]), no_check, audit())
    store.add(dataset("d2", ["b"], 1), no_check, audit())
    assert store.delete("d1", audit("deleted")) is True
    assert store.delete("d1", audit("deleted")) is False
    assert store.search(["a"]) == []
    assert [e.kind for e in audits.list(10, "deleted")] == ["deleted"]
    assert store.delete_all(audit("cleared")) == 1
    assert store.list() == []
    with database.read() as connection:
        assert connection.execute("SELECT COUNT(*) FROM dataset_tags").fetchone()[0] == 0


# --- plans ----------------------------------------------------------------------------------


def test_plan_insert_and_lookup_by_id_and_digest(database: SqliteDatabase) -> None:
    store = SqlitePlanStore(database)
    record = plan("p1", "sha256:" + "a" * 64)
    store.commit(inserts=[record], audit=[audit()])
    assert store.get("p1") == record
    assert store.find_by_digest(record.digest) == record
    assert store.find_by_digest("sha256:" + "b" * 64) is None
    assert store.list("pending") == [record]
    assert store.list("approved") == []


def test_plan_with_a_known_digest_is_a_conflict_naming_the_existing_plan(
    database: SqliteDatabase,
) -> None:
    store = SqlitePlanStore(database)
    store.commit(inserts=[plan("p1", "sha256:" + "a" * 64)])
    with pytest.raises(Conflict, match="already known as p1"):
        store.commit(inserts=[plan("p2", "sha256:" + "a" * 64)], audit=[audit()])
    assert [r.plan_id for r in store.list()] == ["p1"]
    assert SqliteAuditStore(database).list(10) == []


def test_plan_change_is_compare_and_set(database: SqliteDatabase) -> None:
    store = SqlitePlanStore(database)
    original = plan("p1", "sha256:" + "a" * 64)
    store.commit(inserts=[original])
    approved = replace(original, status="approved", decided_by="alice", decided_at=T0)
    store.commit(changes=[PlanChange(original, approved)])
    assert store.get("p1") == approved
    rejected = replace(original, status="rejected", notes="late")
    with pytest.raises(Conflict, match="changed while"):
        store.commit(changes=[PlanChange(original, rejected)], audit=[audit()])
    assert store.get("p1") == approved
    with pytest.raises(NotFound):
        store.commit(changes=[PlanChange(plan("p9", "x:1"), plan("p9", "x:2"))])


def test_failed_commit_applies_none_of_its_parts(database: SqliteDatabase) -> None:
    store = SqlitePlanStore(database)
    first = plan("p1", "sha256:" + "a" * 64)
    store.commit(inserts=[first])
    with pytest.raises(Conflict):
        store.commit(
            inserts=[plan("p2", "sha256:" + "b" * 64)],
            changes=[PlanChange(replace(first, status="approved"), first)],
            audit=[audit()],
        )
    assert [r.plan_id for r in store.list()] == ["p1"]


def test_plan_delete(database: SqliteDatabase) -> None:
    store = SqlitePlanStore(database)
    store.commit(inserts=[plan("p1", "sha256:" + "a" * 64)])
    assert store.delete("p1", audit()) is True
    assert store.delete("p1", audit()) is False
    assert store.get("p1") is None


# --- jobs and audit -------------------------------------------------------------------------


def job(job_id: str, minute: int) -> JobRecord:
    return JobRecord(
        job_id=job_id,
        experiment_id="exp",
        round_index=minute,
        researcher_id="res",
        dataset_id="d1",
        plan_digest="sha256:" + "a" * 64,
        started_at=T0 + timedelta(minutes=minute),
    )


def test_job_finishes_once_with_its_duration(database: SqliteDatabase) -> None:
    store = SqliteJobStore(database)
    store.add(job("j1", 0), audit())
    finished = store.finish(
        "j1", "succeeded", "", {"acc": 0.5}, T0 + timedelta(seconds=90), audit()
    )
    assert finished.outcome == "succeeded"
    assert finished.duration_s == 90.0
    assert store.get("j1") == finished
    with pytest.raises(Conflict, match="already finished"):
        store.finish("j1", "failed", "again", {}, T0, audit())
    with pytest.raises(NotFound):
        store.finish("nope", "failed", "", {}, T0, audit())
    assert store.get("j1") == finished


def test_jobs_are_listed_newest_first_within_the_limit(database: SqliteDatabase) -> None:
    store = SqliteJobStore(database)
    for minute in range(5):
        store.add(job(f"j{minute}", minute), audit())
    assert [r.job_id for r in store.list(3)] == ["j4", "j3", "j2"]


def test_running_jobs_can_be_closed_after_a_node_restart(database: SqliteDatabase) -> None:
    store = SqliteJobStore(database)
    store.add(job("j1", 0), audit())
    store.add(job("j2", 1), audit())
    store.finish("j2", "succeeded", "", {}, T0 + timedelta(minutes=2), audit())
    assert store.finish_running("killed", "node stopped", T0 + timedelta(minutes=5), audit()) == 1
    assert store.get("j1").outcome == "killed"  # type: ignore[union-attr]
    assert store.get("j2").outcome == "succeeded"  # type: ignore[union-attr]


def test_audit_events_are_listed_newest_first_and_filtered_by_kind(
    database: SqliteDatabase,
) -> None:
    store = SqliteAuditStore(database)
    for index in range(4):
        store.record(AuditEntry(at=T0, kind="even" if index % 2 == 0 else "odd", actor=str(index)))
    assert [e.actor for e in store.list(10)] == ["3", "2", "1", "0"]
    assert [e.actor for e in store.list(1)] == ["3"]
    assert [e.actor for e in store.list(10, "even")] == ["2", "0"]
