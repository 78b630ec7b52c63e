"""Train requests are idempotent per (researcher, experiment, round).

A researcher that crashed while its nodes trained, and resumed, sends the same round's
request again, under a new request id. The node must not refuse it (its worker is busy
with that very job) nor run the job twice: the repeated request *re-attaches* to the job
still running and gets its outcome, or gets the outcome of the job that already
finished. Either way the reply answers the new request id.

A repeat is recognised by its key (who asked, which experiment, which round) and its
*fingerprint*: everything in the request that decides the job's result (dataset, plan,
parameters, arguments, extra tensors), not its request id or deadline. A request for a
key whose job runs with another fingerprint is refused (``Conflict``); one whose job
finished with another fingerprint runs anew.

Finished jobs are kept ``keep_s`` seconds, at most ``max_kept`` of them (oldest dropped
first), in memory: a node that restarts runs a repeated request again, which gives the
same result (training replays exactly from its inputs). Only successes are kept: a
repeat of a failed job runs again, so a researcher can retry after the cause is fixed.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from fedward.core.messages import ErrorReply, Reply, TrainReply, TrainRequest
from fedward.errors import Conflict

KEEP_S = 3600.0
MAX_KEPT = 256


@dataclass(frozen=True)
class RoundKey:
    researcher_id: str
    experiment_id: str
    round_index: int


def request_fingerprint(request: TrainRequest) -> str:
    """sha256 of what decides a train request's result (not its id, not its deadline)."""
    decisive = {
        "dataset_id": request.dataset_id,
        "plan_blob": request.plan_blob,
        "plan_digest": request.plan_digest,
        "plan_class": request.plan_class,
        "params_blob": request.params_blob,
        "model_args": request.model_args,
        "training_args": request.training_args,
        "extra_blobs": request.extra_blobs,
        "update_codec": request.update_codec,
        "params_base": request.params_base,
        "params_ref": request.params_ref,
    }
    return hashlib.sha256(msgspec.json.encode(decisive, order="sorted")).hexdigest()


@dataclass
class _Job:
    fingerprint: str
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Reply | None = None
    finished_at: float = 0.0


@dataclass(frozen=True)
class Ticket:
    """A request's place: ``owner`` runs the job and calls ``RoundJobs.finish``; anyone
    else waits for its outcome with ``RoundJobs.outcome``."""

    key: RoundKey
    owner: bool
    job: _Job


class RoundJobs:
    def __init__(
        self,
        keep_s: float = KEEP_S,
        max_kept: int = MAX_KEPT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keep_s = keep_s
        self._max_kept = max_kept
        self._clock = clock
        self._jobs: dict[RoundKey, _Job] = {}
        self._lock = threading.Lock()

    def enter(self, key: RoundKey, fingerprint: str) -> Ticket:
        """The ticket of a request: the owner of a new job, or a repeat of a known one."""
        with self._lock:
            self._forget_old()
            job = self._jobs.get(key)
            if job is not None and job.fingerprint == fingerprint:
                return Ticket(key, owner=False, job=job)
            if job is not None and not job.done.is_set():
                raise Conflict(
                    f"round {key.round_index} of experiment {key.experiment_id} is being "
                    "trained on this node from other inputs",
                    hint="wait for its reply, or resume the experiment from the checkpoint "
                    "that round started from",
                )
            job = _Job(fingerprint)
            self._jobs[key] = job
            return Ticket(key, owner=True, job=job)

    def finish(self, ticket: Ticket, outcome: Reply) -> None:
        """The owner's outcome: handed to every waiting repeat; kept if it succeeded."""
        job = ticket.job
        with self._lock:
            job.outcome = outcome
            job.finished_at = self._clock()
            if not isinstance(outcome, TrainReply) and self._jobs.get(ticket.key) is job:
                del self._jobs[ticket.key]
        job.done.set()

    def forget(self, ticket: Ticket) -> None:
        """A kept outcome that did not hold (its update's upload failed after the reply
        announced it): a repeat of the request runs the job again."""
        with self._lock:
            if self._jobs.get(ticket.key) is ticket.job:
                del self._jobs[ticket.key]

    def outcome(self, ticket: Ticket, request_id: str, timeout_s: float) -> Reply:
        """The job's outcome, addressed to ``request_id``; an ``ErrorReply`` (code
        ``timeout``) if it does not end within ``timeout_s``."""
        if not ticket.job.done.wait(timeout_s) or ticket.job.outcome is None:
            return ErrorReply(
                request_id=request_id,
                code="timeout",
                message=f"the job of round {ticket.key.round_index} that this request "
                f"re-attached to did not end within {timeout_s:.0f} s",
            )
        return msgspec.structs.replace(ticket.job.outcome, request_id=request_id)

    def _forget_old(self) -> None:
        now = self._clock()
        finished = sorted(
            ((job.finished_at, key) for key, job in self._jobs.items() if job.done.is_set()),
            key=lambda item: item[0],
        )
        excess = len(finished) - self._max_kept
        for index, (finished_at, key) in enumerate(finished):
            if index < excess or now - finished_at > self._keep_s:
                del self._jobs[key]
