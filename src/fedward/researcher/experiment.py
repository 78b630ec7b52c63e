"""``Experiment``: rounds of federated training across the nodes that hold matching data.

Each round (``experiment_round``): pick the nodes (``selection``), send each a
``TrainRequest`` and fold the updates in as they come (``rounds``), aggregate, save a
checkpoint (``experiment_state``, ``checkpoint``), tell the observers (progress line,
TensorBoard). Nodes that fail, go offline or are late are dropped from that round and
named in the history; the experiment goes on while at least ``min_replies`` nodes
answer, and stops with a ``FederationError`` that says who failed and why when they do
not.

``Experiment.load_checkpoint("latest")`` rebuilds an experiment from its last checkpoint
(parameters, aggregator state, selection RNG, history) and ``run()`` carries on: the
result is bit for bit the one an uninterrupted run would have given. That holds for a
researcher killed inside a round too: the round's journal (``round_journal``) lets the
resumed round ask the same nodes the same way, and each node answers the repeat with the
job the first request started; a round that cannot end as it would have raises
``RoundNotResumable`` instead of going on with fewer nodes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from fedward.core.ids import new_id, validate_id
from fedward.core.messages import DatasetSummary
from fedward.core.params import Params
from fedward.core.plan_digest import plan_digest
from fedward.errors import PrivacyBudgetExhausted, ValidationError
from fedward.learning.fedbiomed_plans import check_plan_class
from fedward.learning.plan import TrainingPlan
from fedward.learning.plan_source import plan_source
from fedward.researcher import experiment_state, plan_review
from fedward.researcher.aggregators import Aggregator, FedAvg
from fedward.researcher.analysis import history_frame, params_after_round
from fedward.researcher.checkpoint import experiment_dir
from fedward.researcher.checkpoint_saver import CheckpointSaver
from fedward.researcher.discovery import find_datasets
from fedward.researcher.experiment_privacy import ExperimentPrivacy
from fedward.researcher.experiment_round import run_next_round
from fedward.researcher.fedbiomed_names import ExperimentType, experiment_attribute
from fedward.researcher.federation import Federation
from fedward.researcher.history import NodeRound, RoundRecord
from fedward.researcher.history_log import HistoryLog
from fedward.researcher.monitor import Observers, RoundObserver
from fedward.researcher.privacy_settings import DPSettings, SecAgg
from fedward.researcher.progress import ProgressDisplay
from fedward.researcher.selection import (
    NodeSelection,
    SelectionRule,
    as_selection,
    selection_rng,
)
from fedward.researcher.tensorboard import TensorBoardLog
from fedward.researcher.train_requests import PlanUpload, node_training_args
from fedward.researcher.update_codecs import codec_rounds

if TYPE_CHECKING:
    import pandas as pd

RoundCallback = Callable[[RoundRecord], None]


class Experiment(metaclass=ExperimentType):
    """Federated training of ``training_plan`` on the datasets tagged ``tags``.

    ``rounds`` rounds; ``aggregator`` (default FedAvg); ``node_selection`` (default all
    nodes; a ``NodeSelection`` or a callable ``(candidates, round_index, rng)``);
    ``nodes`` restricts the experiment to these node ids; each round waits at most
    ``round_timeout_s`` and needs ``min_replies`` updates. ``seed`` seeds the initial
    parameters, the nodes' training and the node draws. Checkpoints go to
    ``state_dir/experiments/<experiment_id>/`` (default: the federation's state folder;
    ``checkpoints=False`` to skip, ``keep_checkpoints`` to keep only the last ones).
    ``tensorboard`` (True for ``runs/``, or a folder) logs per-node training loss and
    round metrics; ``progress`` (True: stdout, a stream, or False) shows each round live;
    ``observers`` get every round event too (see ``monitor``); ``on_round`` is called
    with each finished round's record.

    Privacy (docs/privacy.md): ``secure_aggregation=SecAgg(...)`` shows the researcher
    and the upload server only masked updates and their sum; ``differential_privacy``
    (``CentralDP`` or ``LocalDP``) reports epsilon after each round in the history;
    ``max_epsilon`` stops the experiment before a round that would pass it
    (``stopped_reason`` says why).
    ``update_codec``: none, float16, bfloat16, int8 (fewer bytes; docs/update-codecs.md).
    """

    def __init__(
        self,
        *,
        tags: Sequence[str],
        training_plan: type[TrainingPlan],
        model_args: Mapping[str, Any] | None = None,
        training_args: Mapping[str, Any] | None = None,
        rounds: int = 1,
        aggregator: Aggregator | None = None,
        nodes: Sequence[str] | None = None,
        round_timeout_s: float = 600.0,
        min_replies: int = 1,
        federation: Federation | None = None,
        experiment_id: str | None = None,
        seed: int = 0,
        on_round: RoundCallback | None = None,
        node_selection: NodeSelection | SelectionRule | None = None,
        state_dir: Path | str | None = None,
        checkpoints: bool = True,
        keep_checkpoints: int | None = None,
        tensorboard: bool | Path | str = False,
        progress: bool | TextIO = True,
        observers: Sequence[RoundObserver] = (),
        secure_aggregation: SecAgg | None = None,
        differential_privacy: DPSettings | None = None,
        max_epsilon: float | None = None,
        update_codec: str = "none",
    ) -> None:
        if rounds < 1:
            raise ValidationError("rounds must be at least 1")
        if not tags:
            raise ValidationError("give at least one dataset tag to look for")
        if min_replies < 1:
            raise ValidationError("min_replies must be at least 1")
        if not round_timeout_s > 0:
            raise ValidationError("round_timeout_s must be positive")
        self.tags = list(tags)
        self.training_plan = training_plan
        self.model_args = dict(model_args or {})
        self.training_args = dict(training_args or {})
        self.rounds = rounds
        self.aggregator = aggregator or FedAvg()
        self.privacy = ExperimentPrivacy(
            secure_aggregation, differential_privacy, max_epsilon, self.aggregator, training_plan
        )
        self.update_codec = update_codec
        self.codec_rounds = codec_rounds(update_codec, secure_aggregation is not None)
        self.stopped_reason = ""
        self.wanted_nodes = list(nodes) if nodes is not None else None
        self.round_timeout_s = round_timeout_s
        self.min_replies = min_replies
        self.experiment_id = validate_id(experiment_id or new_id("exp"), kind="experiment id")
        self.seed = seed
        self.selection = as_selection(node_selection)
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.checkpoints = checkpoints
        self.keep_checkpoints = keep_checkpoints
        self.tensorboard_dir = (
            Path("runs") if tensorboard is True else Path(tensorboard) if tensorboard else None
        )
        self.progress = progress
        self.extra_observers = list(observers)
        self.history: list[RoundRecord] = []
        self.history_log = HistoryLog()  # the history as checkpoints write it
        self.checkpoint_saver = CheckpointSaver()
        self._on_round = on_round
        self._federation = federation
        self._owns_federation = federation is None
        self._global: Params | None = None
        self._rng = selection_rng(seed)
        check_plan_class(training_plan)  # Fed-BioMed's signatures, before anything is sent
        self._source = plan_source(training_plan)
        self._plan_digest = plan_digest(self._source)
        # Checked here, before anything is sent: a setting no one reads is an error.
        training_plan.check_model_args(self.model_args)
        training_plan.check_training_args(node_training_args(self, ""))
        self.plan_upload = PlanUpload(self._source)
        self._datasets: dict[str, DatasetSummary] | None = None
        self._observers: Observers | None = None

    # --- public API -----------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only names the instance lacks get here: Fed-BioMed's get fedward's name.
        raise experiment_attribute(name)

    @property
    def federation(self) -> Federation:
        if self._federation is None:
            from fedward.researcher.connect import connect

            self._federation = connect()
        return self._federation

    @property
    def round_index(self) -> int:
        """The index of the next round to run."""
        return len(self.history)

    @property
    def plan_digest(self) -> str:
        return self._plan_digest

    def aggregated_params(self, round: int | None = None) -> Params:
        """The global parameters after round ``round`` (1 = the first, as the progress line
        and the checkpoints count; 0 = the initial ones), the latest by default. Past
        rounds are read from their checkpoints (``analysis``)."""
        if round is None or round == self.round_index:
            return dict(self.global_params())
        if round == 0:
            return self.training_plan(self.model_args).init_params(self.seed)
        return params_after_round(self.checkpoint_dir(), round, self.round_index)

    def metrics_frame(self, per_node: bool = True) -> pd.DataFrame:
        """The history as a pandas DataFrame: a row per node and round (or per round,
        ``per_node=False``), a column per metric (``analysis.history_frame``)."""
        return history_frame(self.history, per_node)

    def training_replies(self) -> dict[int, dict[str, NodeRound]]:
        """Each node's reply per round, as Fed-BioMed's method gave them: round index
        (from 0) -> node id -> ``NodeRound``. ``history`` has more (round durations)."""
        return {record.round_index: dict(record.nodes) for record in self.history}

    def nodes(self) -> dict[str, DatasetSummary]:
        """The dataset of each node, found by tags (``discovery``; asked once, then kept)."""
        if self._datasets is None:
            self._datasets = find_datasets(self.federation, self.tags, self.wanted_nodes)
        return dict(self._datasets)

    def request_approval(self, description: str = "", timeout_s: float = 30.0) -> dict[str, str]:
        """Submit the plan to every node of the experiment for review; the status per node
        (see ``plan_review``)."""
        nodes = sorted(self.nodes())
        blob = self.plan_upload.blob_for(self.federation.blobs, nodes)
        name = self.training_plan.__name__
        return plan_review.request_approval(
            self.federation, nodes, blob, self._plan_digest, name, description, timeout_s
        )

    def plan_status(self, timeout_s: float = 30.0) -> dict[str, str]:
        """The plan's status on every node: approved, pending, rejected or unknown
        (``"error: ..."`` or ``"no answer"`` when a node could not tell)."""
        nodes = sorted(self.nodes())
        blob = self.plan_upload.blob_for(self.federation.blobs, nodes)
        return plan_review.plan_status(self.federation, nodes, blob, self._plan_digest, timeout_s)

    def run(self) -> list[RoundRecord]:
        """Run the remaining rounds; close what the experiment opened itself."""
        try:
            while self.round_index < self.rounds:
                self.run_once()
        except PrivacyBudgetExhausted as exc:
            self.stopped_reason = str(exc)
            if self.progress is not False:
                stream = sys.stdout if self.progress is True else self.progress
                print(f"experiment {self.experiment_id} {exc}", file=stream)
        finally:
            self.close()
        return self.history

    def run_once(self) -> RoundRecord:
        """One round; ``FederationError`` (and no change) when too few nodes answer.

        A round interrupted by a crash (its journal is next to the checkpoints) is
        resumed: same nodes, same inputs, the answers it already had kept, and the nodes
        that were still training asked again (``round_journal``); if one of them cannot
        deliver now, ``RoundNotResumable`` rather than a round with fewer nodes."""
        return run_next_round(self)

    def plot(
        self,
        path: Path | str = "metrics.png",
        metrics: Sequence[str] | None = None,
        *,
        skip_first_round: bool = False,
    ) -> Path:
        """A PNG of the metrics per round (training loss first): each node, and their
        sample-weighted mean; ``skip_first_round`` leaves out round 1, whose ``global_``
        metrics measure the untrained model and would squash the scale."""
        from fedward.researcher.plot import plot_history

        return plot_history(
            self.history,
            path,
            metrics=metrics,
            title=self.experiment_id,
            skip_first_round=skip_first_round,
        )

    def close(self) -> None:
        """Finish the checkpoint being written, tell the observers, and close the
        federation if the experiment opened it."""
        try:
            self.checkpoint_saver.wait()
        finally:
            self._close_observers_and_federation()

    def _close_observers_and_federation(self) -> None:
        if self._observers is not None:
            self._observers.close()
        if self._owns_federation and self._federation is not None:
            self._federation.close()
            self._federation = None

    # --- checkpoints ------------------------------------------------------------------

    def checkpoint_dir(self) -> Path | None:
        """Where this experiment's checkpoints go (None: not saved)."""
        if not self.checkpoints:
            return None
        base = self.state_dir or (self._federation.state_dir if self._federation else None)
        return experiment_dir(base, self.experiment_id) if base is not None else None

    @property
    def last_checkpoint(self) -> Path | None:
        """The newest checkpoint folder (once any checkpoint being written is complete)."""
        self.checkpoint_saver.wait()
        return self.checkpoint_saver.last

    @classmethod
    def load_checkpoint(
        cls,
        path: Path | str = "latest",
        *,
        federation: Federation | None = None,
        state_dir: Path | str | None = None,
        experiment_id: str | None = None,
        training_plan: type[TrainingPlan] | None = None,
        aggregator: Aggregator | None = None,
        node_selection: NodeSelection | SelectionRule | None = None,
        **settings: Any,
    ) -> Experiment:
        """Rebuild an experiment from a checkpoint folder, or ``"latest"`` under the state
        folder (``state_dir``, else the federation's). ``training_plan``, ``aggregator`` and
        ``node_selection`` are needed only when the checkpoint cannot name them (a plan
        defined in a notebook, a custom rule); ``settings`` override the saved ones
        (``rounds`` to go further, ``on_round``, ``tensorboard``, ``progress`` ...)."""
        return experiment_state.load(
            cls,
            path,
            federation=federation,
            state_dir=Path(state_dir) if state_dir is not None else None,
            experiment_id=experiment_id,
            training_plan=training_plan,
            aggregator=aggregator,
            node_selection=node_selection,
            settings=settings,
        )

    # --- steps --------------------------------------------------------------------------

    def observer_set(self) -> Observers:
        """The observers of every round event: progress, TensorBoard, the researcher's."""
        if self._observers is None:
            observers: list[RoundObserver] = list(self.extra_observers)
            if self.progress is not False:
                stream = None if self.progress is True else self.progress
                observers.append(ProgressDisplay(self.rounds, stream))
            if self.tensorboard_dir is not None:
                observers.append(TensorBoardLog(self.tensorboard_dir, self.experiment_id))
            self._observers = Observers(observers)
        return self._observers

    def global_params(self) -> Params:
        """The current global parameters (the plan's initial ones before any round)."""
        if self._global is None:
            self._global = self.training_plan(self.model_args).init_params(self.seed)
        return self._global
