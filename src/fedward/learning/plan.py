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
from typing import Any, ClassVar, Protocol

from fedward.core.params import Params
from fedward.errors import ValidationError
from fedward.learning.setting_names import TRAINING_ARG_HINTS, check_names
from fedward.learning.training_args import TRAINING_ARG_NAMES

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
    """Base of every training plan. Subclasses must be importable from their own source.

    Settings are never silently ignored: a training argument must be one of
    ``training_args.TRAINING_ARG_NAMES`` or of the plan's ``extra_training_args``; a plan
    that declares ``model_arg_names`` (the shipped ones do) refuses any other model
    argument, and one that declares ``optimizer_arg_names`` any other optimizer argument.
    Both sides check (``check_model_args``, ``check_training_args``): the researcher
    before anything is sent, the node before the plan runs.
    """

    #: Shown in approval requests and node listings.
    framework: str = "generic"
    #: Training arguments this plan reads besides ``TRAINING_ARG_NAMES``.
    extra_training_args: ClassVar[frozenset[str]] = frozenset()
    #: The model arguments this plan reads; None: not declared (not checked).
    model_arg_names: ClassVar[frozenset[str] | None] = None
    #: The keys ``optimizer_args`` may hold; None: not declared (not checked).
    optimizer_arg_names: ClassVar[frozenset[str] | None] = None

    def __init__(self, model_args: Mapping[str, Any] | None = None) -> None:
        self.model_args: dict[str, Any] = dict(model_args or {})

    @classmethod
    def model_arg_hint(cls, name: str) -> str | None:
        """Where an unknown model argument ``name`` lives instead, if the plan knows."""
        return None

    @classmethod
    def check_model_args(cls, model_args: Mapping[str, Any]) -> None:
        """``ValidationError`` naming the closest valid key for a model argument the plan
        does not read (only for plans that declare ``model_arg_names``)."""
        if cls.model_arg_names is None:
            return
        hints = {n: h for n in model_args if (h := cls.model_arg_hint(n)) is not None}
        check_names(f"{cls.__name__} model argument", model_args, cls.model_arg_names, hints)

    @classmethod
    def check_training_args(cls, training_args: Mapping[str, Any]) -> None:
        """``ValidationError`` naming the closest valid key for a training argument (or an
        ``optimizer_args`` key) the plan does not read."""
        valid = TRAINING_ARG_NAMES | cls.extra_training_args
        check_names("training argument", training_args, valid, TRAINING_ARG_HINTS)
        optimizer_args = training_args.get("optimizer_args") or {}
        if not isinstance(optimizer_args, Mapping):
            raise ValidationError("training argument optimizer_args must be a mapping")
        if cls.optimizer_arg_names is not None:
            check_names(
                f"{cls.__name__} optimizer argument", optimizer_args, cls.optimizer_arg_names
            )

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
