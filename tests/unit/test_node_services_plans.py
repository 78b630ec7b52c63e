"""PlanService rules: digests, requests, decisions, versions, default plans, audit."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fedward.core.plan_digest import plan_digest
from fedward.errors import Conflict, NotFound, PlanError, ValidationError
from fedward.node.services import SYSTEM, NodeServices, open_node_services

SOURCE = '''
import numpy as np


class LinearPlan:
    """Fits a line."""

    LEARNING_RATE = 0.1

    def step(self, x):
        return x * self.LEARNING_RATE
'''

# Same code: other comments, blank lines and layout.
REFORMATTED = '''
import numpy as np
class LinearPlan:
    """Fits a line."""
    # tuned by hand
    LEARNING_RATE = 0.1      # do not touch
    def step(self, x):
        return x * self.LEARNING_RATE
'''

CHANGED_CONSTANT = SOURCE.replace("0.1", "0.2")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[NodeServices]:
    services = open_node_services(tmp_path / "node.sqlite3", None)
    yield services
    services.close()


def snapshot(services: NodeServices) -> dict[str, list[tuple[Any, ...]]]:
    connection = sqlite3.connect(services.database.path)
    try:
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall())
            for table in ("plans", "audit_events")
        }
    finally:
        connection.close()


def decisions(services: NodeServices) -> list[str]:
    return [
        event.detail.split(":")[0] for event in services.audit.list_events(kind="plan_decision")
    ]


# --- digests --------------------------------------------------------------------------------


def test_registered_plan_is_pending_and_bound_to_its_normalised_digest(
    services: NodeServices,
) -> None:
    record = services.plans.register(SOURCE, "LinearPlan", "linear", "a line")
    assert (record.kind, record.status, record.decided_by) == ("registered", "pending", None)
    assert record.digest == plan_digest(SOURCE) == plan_digest(REFORMATTED)
    assert record.digest.startswith("sha256:")
    assert services.plans.get(record.plan_id) == record
    assert services.plans.find_by_digest(record.digest) == record


def test_reformatted_plan_with_new_comments_has_the_approved_status(
    services: NodeServices,
) -> None:
    services.plans.register(SOURCE, "LinearPlan", "linear", approve=True)
    assert services.plans.status_of(services.plans.digest(REFORMATTED)) == ("approved", "")


def test_plan_with_one_changed_constant_is_unknown(services: NodeServices) -> None:
    services.plans.register(SOURCE, "LinearPlan", "linear", approve=True)
    assert services.plans.status_of(services.plans.digest(CHANGED_CONSTANT)) == ("unknown", "")


@pytest.mark.parametrize("algorithm", ["sha3_256", "blake2b", "sha512"])
def test_digest_algorithm_is_configurable(tmp_path: Path, algorithm: str) -> None:
    services = open_node_services(tmp_path / "node.sqlite3", None, digest_algorithm=algorithm)
    record = services.plans.register(SOURCE, "LinearPlan", "linear")
    assert record.digest == plan_digest(SOURCE, algorithm)
    assert record.digest.startswith(f"{algorithm}:")
    services.close()


def test_unknown_digest_algorithm_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="unknown digest algorithm"):
        open_node_services(tmp_path / "node.sqlite3", None, digest_algorithm="md5")


def test_changing_the_algorithm_rehashes_stored_plans_keeping_decisions(tmp_path: Path) -> None:
    first = open_node_services(tmp_path / "node.sqlite3", None)
    record = first.plans.register(SOURCE, "LinearPlan", "linear", approve=True)
    first.close()
    second = open_node_services(tmp_path / "node.sqlite3", None, digest_algorithm="sha3_512")
    assert second.plans.status_of(plan_digest(SOURCE, "sha3_512")) == ("approved", "")
    assert second.plans.status_of(record.digest) == ("unknown", "")
    second.close()


# --- bad plans: clear error, registry unchanged ---------------------------------------------


@pytest.mark.parametrize(
    ("source", "class_name", "match"),
    [
        ("def broken(:\n", "X", "not valid Python"),
        ("", "X", "empty"),
        (SOURCE, "OtherPlan", "no top-level class 'OtherPlan'"),
        (SOURCE, "not a name", "invalid training plan class name"),
        ("x = 1\nclass print: pass\n", "print", "invalid training plan class name"),
    ],
)
def test_bad_plans_are_refused(
    services: NodeServices, source: str, class_name: str, match: str
) -> None:
    services.plans.register(SOURCE, "LinearPlan", "linear")
    before = snapshot(services)
    with pytest.raises(PlanError, match=match):
        services.plans.register(source, class_name, "bad")
    with pytest.raises(PlanError, match=match):
        services.plans.request(source, class_name, "please", "researcher-1")
    assert snapshot(services) == before


def test_registering_known_code_again_is_a_conflict(services: NodeServices) -> None:
    first = services.plans.register(SOURCE, "LinearPlan", "linear")
    before = snapshot(services)
    with pytest.raises(Conflict, match=first.plan_id):
        services.plans.register(REFORMATTED, "LinearPlan", "again")
    assert snapshot(services) == before


# --- researcher requests --------------------------------------------------------------------


def test_request_makes_a_pending_requested_plan(services: NodeServices) -> None:
    record = services.plans.request(SOURCE, "LinearPlan", "my experiment", "researcher-1")
    assert (record.kind, record.status) == ("requested", "pending")
    assert (record.researcher_id, record.description) == ("researcher-1", "my experiment")
    assert services.plans.status_of(record.digest) == ("pending", "")
    assert services.plans.list("pending") == [record]


def test_requesting_a_known_digest_returns_the_existing_record_unchanged(
    services: NodeServices,
) -> None:
    approved = services.plans.register(SOURCE, "LinearPlan", "linear", approve=True)
    before = snapshot(services)
    again = services.plans.request(REFORMATTED, "LinearPlan", "other words", "researcher-2")
    assert again == approved
    assert snapshot(services) == before


def test_request_from_an_invalid_researcher_id_is_refused(services: NodeServices) -> None:
    with pytest.raises(ValidationError, match="researcher id"):
        services.plans.request(SOURCE, "LinearPlan", "", "../admin")
    assert services.plans.list() == []


# --- decisions ------------------------------------------------------------------------------


def test_request_then_approve_authorises_the_digest(services: NodeServices) -> None:
    requested = services.plans.request(SOURCE, "LinearPlan", "d", "researcher-1")
    approved = services.plans.approve(requested.plan_id, "alice", "looks fine")
    assert (approved.status, approved.decided_by, approved.notes) == (
        "approved",
        "alice",
        "looks fine",
    )
    assert approved.decided_at is not None
    assert services.plans.get(requested.plan_id) == approved
    assert services.plans.status_of(requested.digest) == ("approved", "looks fine")


def test_rejected_plan_reports_its_notes(services: NodeServices) -> None:
    record = services.plans.request(SOURCE, "LinearPlan", "d", "researcher-1")
    services.plans.reject(record.plan_id, "bob", "reads files outside the dataset")
    assert services.plans.status_of(record.digest) == (
        "rejected",
        "reads files outside the dataset",
    )


def test_rejecting_without_notes_is_refused(services: NodeServices) -> None:
    record = services.plans.request(SOURCE, "LinearPlan", "d", "researcher-1")
    before = snapshot(services)
    with pytest.raises(ValidationError, match="needs notes"):
        services.plans.reject(record.plan_id, "bob", "  ")
    assert snapshot(services) == before


def test_deciding_twice_the_same_way_is_a_conflict(services: NodeServices) -> None:
    record = services.plans.register(SOURCE, "LinearPlan", "linear")
    services.plans.approve(record.plan_id, "alice")
    before = snapshot(services)
    with pytest.raises(Conflict, match=r"already approved \(by alice"):
        services.plans.approve(record.plan_id, "bob")
    assert snapshot(services) == before
    services.plans.reject(record.plan_id, "bob", "changed my mind")
    with pytest.raises(Conflict, match="already rejected"):
        services.plans.reject(record.plan_id, "bob", "still no")


def test_a_rejected_plan_can_be_approved_later(services: NodeServices) -> None:
    record = services.plans.register(SOURCE, "LinearPlan", "linear")
    services.plans.reject(record.plan_id, "bob", "wait for the audit")
    assert services.plans.approve(record.plan_id, "bob").status == "approved"


def test_unknown_plan_id_is_not_found_and_changes_nothing(services: NodeServices) -> None:
    services.plans.register(SOURCE, "LinearPlan", "linear")
    before = snapshot(services)
    calls = [
        lambda: services.plans.get("plan-missing"),
        lambda: services.plans.approve("plan-missing", "alice"),
        lambda: services.plans.reject("plan-missing", "alice", "no"),
        lambda: services.plans.update("plan-missing", CHANGED_CONSTANT),
        lambda: services.plans.delete("plan-missing"),
    ]
    for call in calls:
        with pytest.raises(NotFound, match="plan-missing"):
            call()
    assert snapshot(services) == before


def test_every_decision_is_audited_with_who_and_notes(services: NodeServices) -> None:
    record = services.plans.request(SOURCE, "LinearPlan", "d", "researcher-1")
    services.plans.approve(record.plan_id, "alice", "ok")
    services.plans.reject(record.plan_id, "bob", "not any more")
    services.plans.delete(record.plan_id, by="carol")
    events = services.audit.list_events(kind="plan_decision")
    assert [(e.actor, e.subject) for e in events] == [
        ("carol", record.plan_id),
        ("bob", record.plan_id),
        ("alice", record.plan_id),
        ("researcher-1", record.plan_id),
    ]
    assert decisions(services) == ["deleted", "rejected", "approved", "requested"]
    assert "notes: not any more" in events[1].detail
    assert record.digest in events[1].detail


def test_deleted_plan_no_longer_authorises(services: NodeServices) -> None:
    record = services.plans.register(SOURCE, "LinearPlan", "linear", approve=True)
    services.plans.delete(record.plan_id)
    assert services.plans.status_of(record.digest) == ("unknown", "")


def test_list_filters_by_status_and_refuses_unknown_statuses(services: NodeServices) -> None:
    pending = services.plans.register(SOURCE, "LinearPlan", "linear")
    approved = services.plans.register(CHANGED_CONSTANT, "LinearPlan", "other", approve=True)
    assert services.plans.list() == [pending, approved]
    assert services.plans.list("approved") == [approved]
    with pytest.raises(ValidationError, match="unknown plan status"):
        services.plans.list("maybe")  # type: ignore[arg-type]


# --- versions -------------------------------------------------------------------------------


def test_update_makes_a_pending_version_and_retires_the_old_one(services: NodeServices) -> None:
    old = services.plans.register(SOURCE, "LinearPlan", "linear", approve=True)
    new = services.plans.update(old.plan_id, CHANGED_CONSTANT, by="alice")
    assert (new.status, new.previous_plan_id, new.name) == ("pending", old.plan_id, "linear")
    assert new.digest == plan_digest(CHANGED_CONSTANT)
    retired = services.plans.get(old.plan_id)
    assert (retired.status, retired.review_state) == ("rejected", "superseded")
    assert retired.superseded_by == new.plan_id
    # The decision about the old version is kept, not overwritten by the retirement.
    assert retired.decided_by == "admin"
    status, notes = services.plans.status_of(old.digest)
    assert status == "rejected" and new.plan_id in notes
    assert services.plans.status_of(new.digest) == ("pending", "")


def test_updating_a_rejected_plan_keeps_the_rejection_notes(services: NodeServices) -> None:
    old = services.plans.register(SOURCE, "LinearPlan", "linear")
    services.plans.reject(old.plan_id, "bob", "reads too much")
    new = services.plans.update(old.plan_id, CHANGED_CONSTANT)
    assert services.plans.get(old.plan_id).notes == "reads too much"
    assert new.previous_plan_id == old.plan_id


def test_update_with_the_same_code_is_a_conflict(services: NodeServices) -> None:
    old = services.plans.register(SOURCE, "LinearPlan", "linear")
    before = snapshot(services)
    with pytest.raises(Conflict, match="already has this code"):
        services.plans.update(old.plan_id, REFORMATTED)
    assert snapshot(services) == before


# --- default plans --------------------------------------------------------------------------

OTHER = "class OtherPlan:\n    pass\n"


def test_default_plans_are_registered_approved_and_a_resync_changes_nothing(
    services: NodeServices,
) -> None:
    synced = services.plans.sync_defaults(
        [("linear", SOURCE, "LinearPlan"), ("other", OTHER, "OtherPlan")]
    )
    assert [(r.kind, r.status, r.decided_by) for r in synced] == [
        ("default", "approved", SYSTEM)
    ] * 2
    before = snapshot(services)
    services.plans.sync_defaults([("linear", SOURCE, "LinearPlan"), ("other", OTHER, "OtherPlan")])
    assert snapshot(services) == before


def test_reformatted_default_plan_file_keeps_its_digest_and_approval(
    services: NodeServices,
) -> None:
    (first,) = services.plans.sync_defaults([("linear", SOURCE, "LinearPlan")])
    (second,) = services.plans.sync_defaults([("linear", REFORMATTED, "LinearPlan")])
    assert (second.plan_id, second.digest, second.status) == (
        first.plan_id,
        first.digest,
        "approved",
    )
    assert services.plans.get(first.plan_id).source == REFORMATTED


def test_changed_default_plan_file_replaces_the_old_digest(services: NodeServices) -> None:
    (first,) = services.plans.sync_defaults([("linear", SOURCE, "LinearPlan")])
    (second,) = services.plans.sync_defaults([("linear", CHANGED_CONSTANT, "LinearPlan")])
    assert second.plan_id == first.plan_id
    assert services.plans.status_of(plan_digest(CHANGED_CONSTANT)) == ("approved", "")
    assert services.plans.status_of(plan_digest(SOURCE)) == ("unknown", "")


def test_removed_or_disabled_default_plans_stop_authorising_and_come_back(
    services: NodeServices,
) -> None:
    services.plans.sync_defaults([("linear", SOURCE, "LinearPlan"), ("other", OTHER, "OtherPlan")])
    services.plans.sync_defaults([("other", OTHER, "OtherPlan")])
    status, notes = services.plans.status_of(plan_digest(SOURCE))
    assert status == "rejected"
    assert "default plans" in notes
    services.plans.sync_defaults([])
    assert services.plans.status_of(plan_digest(OTHER))[0] == "rejected"
    services.plans.sync_defaults([("linear", SOURCE, "LinearPlan"), ("other", OTHER, "OtherPlan")])
    assert services.plans.status_of(plan_digest(SOURCE)) == ("approved", "")
    assert services.plans.status_of(plan_digest(OTHER)) == ("approved", "")


def test_an_admins_rejection_of_a_default_plan_survives_a_resync(services: NodeServices) -> None:
    (record,) = services.plans.sync_defaults([("linear", SOURCE, "LinearPlan")])
    services.plans.reject(record.plan_id, "alice", "not on our data")
    services.plans.sync_defaults([("linear", SOURCE, "LinearPlan")])
    assert services.plans.status_of(record.digest) == ("rejected", "not on our data")


def test_a_requested_plan_that_is_also_a_default_becomes_the_default(
    services: NodeServices,
) -> None:
    requested = services.plans.request(SOURCE, "LinearPlan", "d", "researcher-1")
    (default,) = services.plans.sync_defaults([("linear", SOURCE, "LinearPlan")])
    assert default.plan_id == requested.plan_id
    assert (default.kind, default.status) == ("default", "approved")
    assert len(services.plans.list()) == 1


def test_approval_required_is_exposed(tmp_path: Path) -> None:
    services = open_node_services(tmp_path / "node.sqlite3", None, approval_required=False)
    assert services.plans.approval_required is False
    services.close()
