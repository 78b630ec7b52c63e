"""``RoundJobs``: which train requests repeat a round's job, and how long outcomes are kept."""

from __future__ import annotations

import pytest

from fedward.core.messages import ErrorReply, TrainReply, TrainRequest
from fedward.errors import Conflict
from fedward.node.round_jobs import RoundJobs, RoundKey, request_fingerprint

BLOB = "a" * 64


def request(request_id: str = "req-1", **changes: object) -> TrainRequest:
    fields: dict[str, object] = {
        "request_id": request_id,
        "experiment_id": "exp-1",
        "round_index": 1,
        "dataset_id": "ds-1",
        "plan_blob": BLOB,
        "plan_digest": "sha256:" + "b" * 64,
        "plan_class": "Plan",
        "params_blob": BLOB,
        "training_args": {"epochs": 1, "seed": 3},
        **changes,
    }
    return TrainRequest(**fields)  # type: ignore[arg-type]


def reply(request_id: str = "req-1") -> TrainReply:
    return TrainReply(
        request_id=request_id,
        experiment_id="exp-1",
        round_index=1,
        params_blob=BLOB,
        sample_count=5,
        job_id="job-1",
    )


KEY = RoundKey("researcher-1", "exp-1", 1)


def test_the_fingerprint_ignores_request_id_deadline_and_argument_order() -> None:
    same = request("req-2", deadline_s=5.0, training_args={"seed": 3, "epochs": 1})
    assert request_fingerprint(same) == request_fingerprint(request())
    assert request_fingerprint(request(params_blob="c" * 64)) != request_fingerprint(request())


def test_a_repeat_waits_for_the_owners_outcome_under_its_own_request_id() -> None:
    jobs = RoundJobs()
    owner = jobs.enter(KEY, "f1")
    repeat = jobs.enter(KEY, "f1")
    assert owner.owner and not repeat.owner
    jobs.finish(owner, reply())
    answered = jobs.outcome(repeat, "req-9", timeout_s=1)
    assert isinstance(answered, TrainReply)
    assert (answered.request_id, answered.job_id) == ("req-9", "job-1")


def test_a_repeat_of_an_unfinished_job_times_out_with_an_error_reply() -> None:
    jobs = RoundJobs()
    jobs.enter(KEY, "f1")
    late = jobs.outcome(jobs.enter(KEY, "f1"), "req-2", timeout_s=0.01)
    assert isinstance(late, ErrorReply) and late.code == "timeout"


def test_other_inputs_are_refused_while_running_and_run_anew_once_finished() -> None:
    jobs = RoundJobs()
    owner = jobs.enter(KEY, "f1")
    with pytest.raises(Conflict):
        jobs.enter(KEY, "f2")
    jobs.finish(owner, reply())
    assert jobs.enter(KEY, "f2").owner


def test_a_failed_job_is_not_kept_so_a_retry_runs_it_again() -> None:
    jobs = RoundJobs()
    owner = jobs.enter(KEY, "f1")
    waiting = jobs.enter(KEY, "f1")
    jobs.finish(owner, ErrorReply(request_id="req-1", code="job_failed", message="boom"))
    assert isinstance(jobs.outcome(waiting, "req-2", timeout_s=1), ErrorReply)
    assert jobs.enter(KEY, "f1").owner


def test_finished_jobs_are_forgotten_after_keep_s_and_beyond_max_kept() -> None:
    now = [0.0]
    jobs = RoundJobs(keep_s=10.0, max_kept=2, clock=lambda: now[0])
    keys = [RoundKey("r", "exp-1", i) for i in range(3)]
    for key in keys:
        jobs.finish(jobs.enter(key, "f"), reply())
        now[0] += 1.0
    # Three kept would be one too many: the oldest goes at the next request.
    assert jobs.enter(keys[0], "f").owner
    assert not jobs.enter(keys[2], "f").owner
    now[0] += 20.0
    assert jobs.enter(keys[2], "f").owner
