"""The one exception tree of fedward.

Every error raised on purpose by fedward derives from :class:`FedwardError`. Foreign
errors (sockets, paho, http.client, sqlite3, safetensors) are translated once, at the boundary
that meets them, with ``raise ... from``. Subclasses also derive from the builtin that
fits, so ``except ValueError`` keeps working for callers who do not know fedward.

    FedwardError
    ├── ConfigError (ValueError)                 bad or missing configuration
    ├── ValidationError (ValueError)             input that breaks a rule (ids, tags, fields)
    │   ├── ProtocolError                        bytes that are not a valid message
    │   │   ├── MessageTooLarge
    │   │   └── MalformedPacket                  not a valid MQTT 3.1.1 packet (embedded broker)
    │   ├── DatasetError                         a dataset that cannot be added or read
    │   ├── PlanError                            a training plan that cannot be loaded
    │   └── UndefinedMetricError                 a metric with no value on this data
    ├── UnknownName (TypeError)                  a name fedward has not (a typo, Fed-BioMed's):
    │   │                                        the message says fedward's
    │   ├── UnknownImport (ImportError)          ``from fedward... import FedAverage``
    │   └── UnknownAttribute (AttributeError)    ``exp.breakpoint()``
    ├── NotFound (LookupError)                   unknown id: dataset, blob, plan, peer, experiment
    ├── Conflict (ValueError)                    already exists / already decided / already online
    ├── AccessDenied (PermissionError)           missing or wrong credentials, not a reader
    │   └── PrivacyPolicyViolation               a train request below the node's privacy floor
    ├── IntegrityError (ValueError)              content does not match its hash
    ├── TransportError (ConnectionError)         broker or upload server unreachable
    │   └── RequestTimeout (TimeoutError)        no answer before the deadline
    ├── StorageError (RuntimeError)              a database file cannot be read or written
    │   └── QuotaExceeded                        an upload past the upload server's quota
    ├── PlanNotApproved (PermissionError)        a plan whose digest is not Approved
    ├── JobError (RuntimeError)                  a training job failed: the plan raised
    │   │                                        (with the plan's own failing lines)
    │   ├── JobTimedOut                          killed at the request's deadline
    │   ├── JobOutOfMemory                       past ``[jobs] memory_mb``
    │   ├── JobOutOfCpu                          past ``[jobs] cpu_s`` of CPU time
    │   └── JobWorkerDied                        the worker process ended unexpectedly
    ├── FederationError (RuntimeError)           a round could not gather enough replies
    │   └── RoundNotResumable                    an interrupted round cannot end as it would have
    ├── PrivacyBudgetExhausted (RuntimeError)    the next round would pass max_epsilon
    └── VpnError (RuntimeError)                  WireGuard / address allocation / registry failures

Each error carries an ``exit_code`` used by the CLI and a stable ``code`` sent in
``ErrorReply`` messages, so a researcher can branch on it without parsing text.
"""

from __future__ import annotations

from dataclasses import dataclass


class FedwardError(Exception):
    """Root of every error fedward raises on purpose."""

    code: str = "error"
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class ConfigError(FedwardError, ValueError):
    code = "config"
    exit_code = 78  # EX_CONFIG


class ValidationError(FedwardError, ValueError):
    code = "invalid"
    exit_code = 65  # EX_DATAERR


class ProtocolError(ValidationError):
    code = "protocol"


class MessageTooLarge(ProtocolError):
    code = "too_large"


class MalformedPacket(ProtocolError):
    """Bytes from a client that are not a valid MQTT 3.1.1 packet; the broker drops it."""


class DatasetError(ValidationError):
    code = "dataset"


class PlanError(ValidationError):
    code = "plan"


class UndefinedMetricError(ValidationError):
    """The metric has no value on this data (e.g. one class only)."""


class UnknownName(FedwardError, TypeError):
    """A name fedward has not (an argument, a class, a method): a typo, or the name of
    the system fedward replaces (Fed-BioMed). The message says fedward's name for it."""

    code = "unknown_name"
    exit_code = 64  # EX_USAGE


class UnknownImport(UnknownName, ImportError):
    """Raised by a module's ``__getattr__``, so that ``from module import Name`` shows the
    message (an AttributeError would be replaced by a bare "cannot import name")."""


class UnknownAttribute(UnknownName, AttributeError):
    pass


class NotFound(FedwardError, LookupError):
    code = "not_found"
    exit_code = 66  # EX_NOINPUT


class Conflict(FedwardError, ValueError):
    code = "conflict"
    exit_code = 73  # EX_CANTCREAT


class AccessDenied(FedwardError, PermissionError):
    code = "access_denied"
    exit_code = 77  # EX_NOPERM


class PrivacyPolicyViolation(AccessDenied):
    """A node's ``[privacy]`` rule refused a train request; ``rule`` names the setting."""

    code = "privacy_policy"

    def __init__(self, message: str, *, rule: str, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.rule = rule


class IntegrityError(FedwardError, ValueError):
    code = "integrity"
    exit_code = 65


class TransportError(FedwardError, ConnectionError):
    code = "transport"
    exit_code = 69  # EX_UNAVAILABLE


class RequestTimeout(TransportError, TimeoutError):
    code = "timeout"
    exit_code = 75  # EX_TEMPFAIL


class StorageError(FedwardError, RuntimeError):
    """The database could not be read or written (disk full, corrupt file, lock timeout)."""

    code = "storage"
    exit_code = 74  # EX_IOERR


class QuotaExceeded(StorageError):
    """The upload server refused an upload that would take its stored bytes past a quota
    (its uploader's, or the server's total): HTTP 507. Not a transient failure: sending
    it again is refused again until blobs are deleted or the quota is raised."""

    code = "quota_exceeded"


class PlanNotApproved(FedwardError, PermissionError):
    code = "plan_not_approved"
    exit_code = 77

    def __init__(self, message: str, *, status: str, notes: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.notes = notes


@dataclass(frozen=True)
class PlanFrame:
    """One frame of a failure inside the plan's own code: the line number in the plan's
    canonical text (``fedward.core.plan_digest.normalise_source``), the function, and that
    line's text as the node holds it."""

    line: int
    function: str
    text: str = ""


class JobError(FedwardError, RuntimeError):
    code = "job_failed"
    exit_code = 70  # EX_SOFTWARE

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        plan_frames: tuple[PlanFrame, ...] = (),
    ) -> None:
        super().__init__(message, hint=hint)
        self.plan_frames = plan_frames


class JobTimedOut(JobError):
    code = "job_timeout"


class JobOutOfMemory(JobError):
    code = "job_memory_limit"


class JobOutOfCpu(JobError):
    code = "job_cpu_limit"


class JobWorkerDied(JobError):
    code = "job_worker_died"


class FederationError(FedwardError, RuntimeError):
    code = "federation"
    exit_code = 70


class PrivacyBudgetExhausted(FedwardError, RuntimeError):
    """An experiment stopped before a round that would take epsilon past ``max_epsilon``."""

    code = "privacy_budget"
    exit_code = 70

    def __init__(self, message: str, *, epsilon: float, max_epsilon: float) -> None:
        super().__init__(message)
        self.epsilon = epsilon
        self.max_epsilon = max_epsilon


class RoundNotResumable(FederationError):
    """A round interrupted by a researcher's crash cannot be finished as the uninterrupted
    run would have finished it (a node that was training is gone): nothing is aggregated."""

    code = "round_not_resumable"


class VpnError(FedwardError, RuntimeError):
    code = "vpn"
    exit_code = 71  # EX_OSERR
