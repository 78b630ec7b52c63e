"""What the node's job log records for a training job that ended badly.

The failures themselves are in :mod:`fedward.errors`; each carries a stable ``code``
(sent in the ``ErrorReply``) a researcher can branch on. A plan that raises is a plain
``JobError`` that carries its exception type, message and failing lines (``PlanFrame``).

    error            code              outcome   why
    JobError         job_failed        failed    the plan raised (type, message, its lines)
    JobTimedOut      job_timeout       timeout   killed at the request's deadline
    JobOutOfMemory   job_memory_limit  killed    past ``[jobs] memory_mb``
    JobOutOfCpu      job_cpu_limit     killed    past ``[jobs] cpu_s`` of CPU time
    JobWorkerDied    job_worker_died   failed    the worker process ended unexpectedly
"""

from __future__ import annotations

from fedward.errors import JobError, JobOutOfCpu, JobOutOfMemory, JobTimedOut
from fedward.storage.node_records import JobOutcome


def outcome_of(error: JobError) -> JobOutcome:
    """What the job log records for a job that ended with ``error``."""
    if isinstance(error, JobTimedOut):
        return "timeout"
    if isinstance(error, JobOutOfMemory | JobOutOfCpu):
        return "killed"
    return "failed"
