"""Configuration objects. Frozen, validated at construction, secrets never printed."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from fedward.core.ids import validate_id
from fedward.core.plan_digest import DEFAULT_ALGORITHM, DIGEST_ALGORITHMS
from fedward.errors import ConfigError

DEFAULT_MAX_MESSAGE_BYTES = 1 << 20


class Secret:
    """A string that does not show itself in ``repr``, logs or tracebacks."""

    __slots__ = ("_value", "path")

    def __init__(self, value: str, path: Path | None = None) -> None:
        self._value = value
        self.path = path  # the file it was read from, if any: kept away from job workers

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def from_file(cls, path: Path) -> Secret:
        try:
            return cls(Path(path).read_text(encoding="utf-8").strip(), Path(path).resolve())
        except OSError as exc:
            raise ConfigError(f"cannot read secret file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"secret file {path} is not UTF-8 text") from exc
        except ValueError as exc:  # a NUL byte in the path
            raise ConfigError(f"cannot read secret file {path!r}: {exc}") from exc


def _check_port(port: int, what: str) -> int:
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"{what} port must be 1-65535, got {port!r}")
    return port


@dataclass(frozen=True)
class BrokerEndpoint:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: Secret | None = None
    keepalive_s: int = 30

    def __post_init__(self) -> None:
        _check_port(self.port, "broker")
        if self.keepalive_s < 5:
            raise ConfigError("broker keepalive must be at least 5 s")


@dataclass(frozen=True)
class UploadsEndpoint:
    url: str = "http://127.0.0.1:8000"
    token: Secret | None = None

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(
                f"upload server URL must start with http:// or https://: {self.url!r}"
            )

    @property
    def base_url(self) -> str:
        """The server root; the seed's ``.../upload/`` form is accepted and trimmed."""
        url = self.url.rstrip("/")
        if url.endswith("/upload"):
            url = url[: -len("/upload")]
        return url


GpuMode = Literal["off", "allowed", "only"]


@dataclass(frozen=True)
class GpuPolicy:
    """REFERENCE: CUDA only if available and (researcher asked and node allows) or node forces."""

    mode: GpuMode = "off"
    device_index: int = 0


SandboxMode = Literal["auto", "bubblewrap", "basic", "none"]
SANDBOX_MODES: tuple[SandboxMode, ...] = ("auto", "bubblewrap", "basic", "none")
# What ``[jobs] require`` may name (see fedward.node.jobs.isolation).
JOB_GUARANTEES = ("no_network", "no_secrets", "process_tree", "memory_tree")


@dataclass(frozen=True)
class JobLimits:
    """``[jobs]``: what a training job may use, and how it is isolated."""

    memory_mb: int = 4096  # for the job's whole process tree (cgroup), and each process
    cpu_s: int = 3600  # CPU seconds per job, the whole tree counted where a cgroup exists
    idle_worker_s: float = 600.0  # a warm worker with no job for this long is stopped
    disk_mb: int = 4096  # what a job may write in its work folder (and per file)
    pids_max: int = 256  # processes and threads of one job tree
    max_parallel: int = 4  # jobs running at once; more requests wait their turn
    # CPU threads per job (OpenMP, BLAS, torch); None: the node's CPUs / max_parallel
    threads: int | None = None
    sandbox: SandboxMode = "auto"  # auto: strongest available; basic: no namespaces
    require: tuple[str, ...] = ("no_network", "no_secrets")  # or no job runs

    def __post_init__(self) -> None:
        for name in ("memory_mb", "cpu_s", "disk_mb", "pids_max", "max_parallel"):
            if getattr(self, name) < 1:
                raise ConfigError(f"[jobs] {name} must be at least 1, got {getattr(self, name)}")
        if self.pids_max < 16:
            raise ConfigError("[jobs] pids_max must be at least 16 (Python and BLAS use threads)")
        if self.threads is not None:
            _check_threads(self.threads, self.pids_max)
        if self.sandbox not in SANDBOX_MODES:
            raise ConfigError(
                f"[jobs] sandbox must be one of {', '.join(SANDBOX_MODES)}, got {self.sandbox!r}"
            )
        for guarantee in self.require:
            if guarantee not in JOB_GUARANTEES:
                close = difflib.get_close_matches(guarantee, JOB_GUARANTEES, n=1)
                raise ConfigError(
                    f"[jobs] require names unknown protection {guarantee!r}",
                    hint=f"did you mean {close[0]!r}?"
                    if close
                    else "choose among " + ", ".join(JOB_GUARANTEES),
                )


def max_job_threads(pids_max: int) -> int:
    """The most threads a job may be given: each counts against ``pids_max``, and a BLAS
    library may start a pool of its own beside torch's, so half of it."""
    return max(1, pids_max // 2)


def _check_threads(threads: int, pids_max: int) -> None:
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(
            f"[jobs] threads must be a whole number of at least 1, or 'auto', got {threads!r}"
        )
    if threads > max_job_threads(pids_max):
        raise ConfigError(
            f"[jobs] threads = {threads} leaves no room in pids_max = {pids_max} "
            "(every thread counts as a process)",
            hint=f"at most {max_job_threads(pids_max)} threads, or raise pids_max",
        )


@dataclass(frozen=True)
class PrivacyPolicy:
    """``[privacy]``: the floor this node sets for every experiment, whoever runs it.

    The node enforces each rule itself (``fedward.node.privacy_policy``): a train request
    that does not meet one is refused, naming the rule, and the refusal is audited.
    Epsilons are node-level (one node's whole update), counted at ``delta`` by the node's
    own ledger, per researcher and dataset, across experiments.
    """

    require_secure_aggregation: bool = False
    min_noise_multiplier: float | None = None  # central DP with at least this sigma
    max_epsilon_per_experiment: float | None = None
    min_nodes_per_round: int = 1  # k-anonymity of the aggregate (needs secure aggregation)
    epsilon_budget: float | None = None  # per researcher per dataset, all experiments
    delta: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("min_noise_multiplier", "max_epsilon_per_experiment", "epsilon_budget"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"[privacy] {name} must be positive, got {value}")
        if self.min_nodes_per_round < 1:
            raise ConfigError("[privacy] min_nodes_per_round must be at least 1")
        if not 0 < self.delta < 1:
            raise ConfigError(f"[privacy] delta must be in (0, 1), got {self.delta}")

    @property
    def needs_accounting(self) -> bool:
        return self.max_epsilon_per_experiment is not None or self.epsilon_budget is not None

    def rules(self) -> list[str]:
        """The rules in force, in words (``fedward node status``, the GUI); [] for none."""
        lines = []
        if self.require_secure_aggregation:
            lines.append("secure aggregation required")
        if self.min_nodes_per_round > 1:
            lines.append(f"at least {self.min_nodes_per_round} nodes per round")
        if self.min_noise_multiplier is not None:
            lines.append(f"central DP with noise multiplier >= {self.min_noise_multiplier:g}")
        if self.max_epsilon_per_experiment is not None:
            lines.append(
                f"epsilon <= {self.max_epsilon_per_experiment:g} per experiment "
                f"(delta {self.delta:g})"
            )
        if self.epsilon_budget is not None:
            lines.append(
                f"epsilon budget {self.epsilon_budget:g} per researcher and dataset "
                f"(delta {self.delta:g})"
            )
        return lines


@dataclass(frozen=True)
class NodeRetention:
    """``[retention]``: when the node deletes an experiment's job folder. A folder with no
    job for ``keep_job_folders_h`` hours goes (never while one of its jobs runs), checked
    every ``collect_every_s`` (0: only by ``fedward node gc``)."""

    keep_job_folders_h: float = 24.0
    collect_every_s: float = 600.0

    def __post_init__(self) -> None:
        if not (self.keep_job_folders_h >= 0 and self.collect_every_s >= 0):  # NaN too
            raise ConfigError("[retention] times must be numbers, not negative")


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    state_dir: Path
    data_root: Path | None = None
    broker: BrokerEndpoint = field(default_factory=BrokerEndpoint)
    uploads: UploadsEndpoint = field(default_factory=UploadsEndpoint)
    approval_required: bool = True
    allow_default_plans: bool = True
    digest_algorithm: str = DEFAULT_ALGORITHM
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    gpu: GpuPolicy = field(default_factory=GpuPolicy)
    jobs: JobLimits = field(default_factory=JobLimits)
    privacy: PrivacyPolicy = field(default_factory=PrivacyPolicy)
    retention: NodeRetention = field(default_factory=NodeRetention)

    def __post_init__(self) -> None:
        try:
            validate_id(self.node_id, kind="node id")
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        if self.digest_algorithm not in DIGEST_ALGORITHMS:
            raise ConfigError(
                f"unknown digest algorithm {self.digest_algorithm!r}",
                hint="one of " + ", ".join(DIGEST_ALGORITHMS),
            )

    @property
    def database_path(self) -> Path:
        return self.state_dir / "node.sqlite3"

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"


@dataclass(frozen=True)
class ResearcherConfig:
    researcher_id: str
    state_dir: Path
    broker: BrokerEndpoint = field(default_factory=BrokerEndpoint)
    uploads: UploadsEndpoint = field(default_factory=UploadsEndpoint)
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def __post_init__(self) -> None:
        try:
            validate_id(self.researcher_id, kind="researcher id")
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
