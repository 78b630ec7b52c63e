"""How a training job can end badly, as errors a researcher can branch on.

Each carries a stable ``code`` (sent in the ``ErrorReply``) and the ``outcome`` written to
the node's job log. A plan that raises is a plain ``JobError`` (code ``job_failed``).

    JobError                       job_failed        the plan raised; details in the job log
    ├── JobTimedOut                job_timeout       killed at the request's deadline
    ├── JobOutOfMemory             job_memory_limit  past ``[jobs] memory_mb``
    ├── JobOutOfCpu                job_cpu_limit     past ``[jobs] cpu_s`` of CPU time
    └── JobWorkerDied              job_worker_died   the worker process ended unexpectedly
"""

from __future__ import annotations

from fedward.errors import JobError
from fedward.storage.node_records import JobOutcome


class JobTimedOut(JobError):
    code = "job_timeout"


class JobOutOfMemory(JobError):
    code = "job_memory_limit"


class JobOutOfCpu(JobError):
    code = "job_cpu_limit"


class JobWorkerDied(JobError):
    code = "job_worker_died"


def outcome_of(error: JobError) -> JobOutcome:
    """What the job log records for a job that ended with ``error``."""
    if isinstance(error, JobTimedOut):
        return "timeout"
    if isinstance(error, JobOutOfMemory | JobOutOfCpu):
        return "killed"
    return "failed"
