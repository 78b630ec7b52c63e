"""Plan versions form lineages: links, numbers, authors, and one approved version each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.node.services import NodeServices, open_node_services

V1 = "class TumourLR:\n    RATE = 0.1\n\n    def train(self, data):\n        return data\n"
V2 = V1.replace("0.1", "0.05")
V3 = V1.replace("0.1", "0.01")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[NodeServices]:
    services = open_node_services(tmp_path / "node.sqlite3", None)
    yield services
    services.close()


def test_a_researchers_new_version_links_to_the_approved_one(services: NodeServices) -> None:
    plans = services.plans
    v1 = plans.request(V1, "TumourLR", "", "researcher1")
    plans.approve(v1.plan_id, "paula")
    v2 = plans.request(V2, "TumourLR", "", "researcher1")
    assert (v2.version, v2.previous_plan_id, v2.lineage_id) == (2, v1.plan_id, v1.plan_id)
    base = plans.review_base(v2)
    assert base is not None and base.plan_id == v1.plan_id
    assert [r.plan_id for r in plans.lineage(v2.plan_id)] == [v1.plan_id, v2.plan_id]


def test_approving_a_new_version_supersedes_the_old_one_and_keeps_its_decision(
    services: NodeServices,
) -> None:
    plans = services.plans
    v1 = plans.request(V1, "TumourLR", "", "researcher1")
    plans.approve(v1.plan_id, "paula", "reads the table only")
    v2 = plans.request(V2, "TumourLR", "", "researcher1")
    plans.approve(v2.plan_id, "alice")
    old = plans.get(v1.plan_id)
    assert (old.review_state, old.superseded_by) == ("superseded", v2.plan_id)
    assert (old.decided_by, old.notes) == ("paula", "reads the table only")
    assert plans.status_of(old.digest)[0] == "rejected"
    assert plans.status_of(v2.digest) == ("approved", "")
    assert plans.approved_version(old) is not None
    events = services.audit.list_events(kind="plan_decision")
    assert any(e.subject == v1.plan_id and "superseded by version 2" in e.detail for e in events)


def test_approving_an_old_version_again_supersedes_the_newer_one(services: NodeServices) -> None:
    plans = services.plans
    v1 = plans.request(V1, "TumourLR", "", "researcher1")
    plans.approve(v1.plan_id, "paula")
    v2 = plans.request(V2, "TumourLR", "", "researcher1")
    plans.approve(v2.plan_id, "paula")
    plans.approve(v1.plan_id, "paula", "roll back")
    assert plans.get(v1.plan_id).review_state == "approved"
    assert plans.get(v2.plan_id).review_state == "superseded"


def test_another_researchers_plan_of_the_same_name_is_another_lineage(
    services: NodeServices,
) -> None:
    plans = services.plans
    mine = plans.request(V1, "TumourLR", "", "researcher1")
    plans.approve(mine.plan_id, "paula")
    theirs = plans.request(V2, "TumourLR", "", "researcher2")
    plans.approve(theirs.plan_id, "paula")
    assert theirs.version == 1 and theirs.lineage_id != mine.lineage_id
    assert plans.get(mine.plan_id).status == "approved"


def test_an_update_is_written_by_the_person_who_made_it_not_requested(
    services: NodeServices,
) -> None:
    plans = services.plans
    v1 = plans.request(V1, "TumourLR", "", "researcher1")
    v2 = plans.update(v1.plan_id, V2, by="alice")
    assert (v2.created_by, v2.researcher_id, v2.kind, v2.version) == (
        "alice",
        None,
        "registered",
        2,
    )
    assert plans.get(v1.plan_id).created_by == "researcher1"
    # The researcher's next version continues the same lineage, after alice's.
    v3 = plans.request(V3, "TumourLR", "", "researcher1")
    assert (v3.lineage_id, v3.version, v3.previous_plan_id) == (v1.plan_id, 3, v2.plan_id)


def test_registering_a_name_written_on_the_node_again_is_its_next_version(
    services: NodeServices,
) -> None:
    plans = services.plans
    first = plans.register(V1, "TumourLR", "Tumour LR", by="alice", approve=True)
    second = plans.register(V2, "TumourLR", "Tumour LR", by="alice", approve=True)
    assert (second.version, second.previous_plan_id) == (2, first.plan_id)
    assert plans.get(first.plan_id).superseded_by == second.plan_id
    assert first.created_by == "alice"
