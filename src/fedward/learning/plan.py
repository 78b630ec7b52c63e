"""The contract between fedward and a researcher's training plan.

A plan class is instantiated on the researcher (to make the initial parameters) and in
the node's job worker (to train). The worker calls ``train`` once per round with the
global parameters; the plan returns new parameters, the number of samples it trained
on (the FedAvg weight) and metrics. Validation on the node's held-out share is part of
``train`` so that it uses exactly the split the plan trained against.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from fedward.core.params import Params

#: Parameters named ``buffer:<name>`` are statistics of the data, not trained weights
#: (BatchNorm running mean/var, the feature moments of the sklearn plans). They travel
#: and are averaged by sample count like any parameter, which for moments is exact, but
#: server optimisers (FedAdam, FedYogi, FedAdagrad), SCAFFOLD corrections, FedProx terms
#: and robust rules SHOULD take their plain weighted mean instead of stepping them.
BUFFER_PREFIX = "buffer:"


def is_buffer(name: str) -> bool:
    """True for a parameter that is a data statistic (see ``BUFFER_PREFIX``)."""
    return name.startswith(BUFFER_PREFIX)


#: Names of SCAFFOLD's extras (see ``fedward.learning.scaffold_client``): the server's
#: control variate ``c`` and its record of this node's ``c_i`` come in with the request;
#: the control update ``c_i_new - c_i`` goes back in ``TrainOutcome.extras``.
SCAFFOLD_SERVER_CONTROL = "scaffold_server_control"
SCAFFOLD_NODE_CONTROL = "scaffold_node_control"
SCAFFOLD_DELTA_CONTROL = "scaffold_delta_control"


@dataclass(frozen=True)
class DatasetView:
    """What a plan sees of a node dataset. ``path`` exists only inside the node."""

    dataset_id: str
    data_type: str
    path: Path
    metadata: Mapping[str, Any] = field(default_factory=dict)


class Progress(Protocol):
    """Live reporting from inside ``train`` (streamed to the researcher's TensorBoard)."""

    def scalar(self, name: str, value: float, step: int) -> None: ...

    def log(self, level: str, message: str) -> None: ...


class NullProgress:
    def scalar(self, name: str, value: float, step: int) -> None:
        pass

    def log(self, level: str, message: str) -> None:
        pass


@dataclass
class TrainOutcome:
    params: Params
    sample_count: int
    metrics: dict[str, float] = field(default_factory=dict)
    # Named extra tensors for aggregators that need them (e.g. SCAFFOLD control deltas).
    extras: dict[str, Params] = field(default_factory=dict)


class TrainingPlan(ABC):
    """Base of every training plan. Subclasses must be importable from their own source."""

    #: Shown in approval requests and node listings.
    framework: str = "generic"

    def __init__(self, model_args: Mapping[str, Any] | None = None) -> None:
        self.model_args: dict[str, Any] = dict(model_args or {})

    @abstractmethod
    def init_params(self, seed: int = 0) -> Params:
        """Initial global parameters, deterministic for a given ``seed``."""

    @abstractmethod
    def train(
        self,
        params: Params,
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        """One round of local training from ``params`` on ``dataset``."""

    #: Set by the node's job worker from its GPU policy before ``train`` ("cpu", "cuda:0", ...).
    assigned_device: str = "cpu"

    #: Set by the node's job worker before ``train``: the named extra tensors the
    #: aggregator sent with the train request (``Aggregator.extras_for_node``), e.g.
    #: ``SCAFFOLD_SERVER_CONTROL`` and ``SCAFFOLD_NODE_CONTROL``. Empty when the request
    #: carries none. Read-only by default so that no instance shares a mutable dict.
    received_extras: Mapping[str, Params] = MappingProxyType({})

    #: Set by the node's job worker before ``train``: this node's id and the round's index
    #: (0 for the first). With the experiment's seed they seed the plan's randomness
    #: (``training_args.held_out_split``, ``training_args.round_rng``).
    node_id: str = ""
    round_index: int = 0

    def device(self) -> str:
        """Where training runs: the device the node's GPU policy assigned."""
        return self.assigned_device
