"""A researcher that dies inside a round: the round's journal lets the resumed experiment
finish it as the uninterrupted run would have, or refuse loudly when it cannot.

The "crash" is an observer that raises a ``BaseException`` the experiment does not
handle, at a chosen point of round 2; the fake nodes (``researcher_fake_node``) train by
arithmetic, so a node asked twice gives the same update twice.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from fedward.core.messages import ScalarEvent
from fedward.errors import FederationError, RoundNotResumable
from fedward.researcher.experiment import Experiment
from fedward.researcher.history import RoundRecord
from fedward.researcher.round_journal import RoundJournal, journal_path

from .researcher_fake_node import NodeBehaviour, add
from .test_selection import Harness, eventually

NODES = ["node1", "node2", "node3"]


class Crash(BaseException):
    """The researcher's process dying: nothing in fedward catches it."""


class CrashWhen:
    """Raise ``Crash`` once node ``node_id`` reaches ``status`` in round index 1."""

    def __init__(self, node_id: str, status: str) -> None:
        self.node_id, self.status = node_id, status

    def round_started(self, round_index: int, nodes: Sequence[str]) -> None:
        pass

    def node_changed(self, round_index: int, node_id: str, status: str) -> None:
        if (round_index, node_id, status) == (1, self.node_id, self.status):
            raise Crash

    def scalar(self, node_id: str, event: ScalarEvent) -> None:
        pass

    def round_finished(self, record: RoundRecord) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    setup = Harness(state_dir=tmp_path / "researcher")
    for index, node_id in enumerate(NODES, start=1):
        setup.add_node(node_id, NodeBehaviour(train=add(float(index)), sample_count=10 * index))
    yield setup
    setup.close()


def crash_then_resume(harness: Harness, observer: CrashWhen, experiment_id: str) -> Experiment:
    crashing = harness.experiment(experiment_id=experiment_id, rounds=3, observers=[observer])
    crashing.run_once()
    with pytest.raises(Crash):
        crashing.run_once()
    return Experiment.load_checkpoint(
        "latest", federation=harness.federation, experiment_id=experiment_id, progress=False
    )


def test_a_round_resumed_after_some_answers_asks_only_the_others_and_ends_bit_for_bit(
    harness: Harness,
) -> None:
    straight = harness.experiment(experiment_id="exp-straight", rounds=3)
    straight.run()
    resumed = crash_then_resume(harness, CrashWhen("node2", "ok"), "exp-resumed")
    journal = RoundJournal.open(journal_path(resumed.checkpoint_dir() or Path(), 1))
    answered = set(journal.answers)
    assert journal.resumed and {"node1", "node2"} <= answered
    asked_before = {n: len(harness.nodes[n].train_requests()) for n in NODES}

    resumed.run()

    # Round 2 asked again only the nodes whose answer the journal did not hold; round 3 all.
    asked = {n: len(harness.nodes[n].train_requests()) - asked_before[n] for n in NODES}
    assert asked == {n: 1 if n in answered else 2 for n in NODES}
    for name, value in straight.aggregated_params().items():
        assert resumed.aggregated_params()[name].tobytes() == value.tobytes()
    assert not journal.path.exists()


def test_a_node_that_failed_before_the_crash_stays_failed_in_the_resumed_round(
    harness: Harness,
) -> None:
    harness.nodes["node3"].behaviour.error = ("job_failed", "training plan raised ValueError")
    straight = harness.experiment(experiment_id="exp-straight", rounds=3)
    straight.run()
    resumed = crash_then_resume(harness, CrashWhen("node3", "failed"), "exp-resumed")
    harness.nodes["node3"].behaviour.error = None  # it would succeed now...
    assert resumed.run_once().nodes["node3"].status == "failed"  # ...but had failed
    harness.nodes["node3"].behaviour.error = ("job_failed", "training plan raised ValueError")
    resumed.run()

    for name, value in straight.aggregated_params().items():
        assert resumed.aggregated_params()[name].tobytes() == value.tobytes()


def test_a_node_still_training_at_the_crash_must_deliver_or_the_round_fails_loudly(
    harness: Harness,
) -> None:
    # node3 has not answered when the crash comes, and is offline at the resume.
    harness.nodes["node3"].behaviour.delay_s = 0.5
    resumed = crash_then_resume(harness, CrashWhen("node2", "ok"), "exp-resumed")
    harness.nodes["node3"].announce("offline")
    assert eventually(lambda: "node3" in harness.federation.offline_nodes())
    with pytest.raises(RoundNotResumable, match=r"offline: node3") as refused:
        resumed.run_once()
    assert resumed.round_index == 1 and refused.value.hint and ".journal" in refused.value.hint

    harness.nodes["node3"].announce("online")
    harness.wait_online()
    record = resumed.run_once()  # the journal is still there: the round resumes
    assert record.succeeded == NODES


def test_a_round_that_fails_as_an_uninterrupted_run_would_leaves_no_journal(
    harness: Harness,
) -> None:
    for node in harness.nodes.values():
        node.behaviour.error = ("job_failed", "no")
    experiment = harness.experiment(experiment_id="exp-failing", rounds=1)
    with pytest.raises(FederationError) as failed:
        experiment.run_once()
    assert not isinstance(failed.value, RoundNotResumable)
    assert not journal_path(experiment.checkpoint_dir() or Path(), 0).exists()
