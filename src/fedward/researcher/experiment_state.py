"""An experiment as JSON in its checkpoint, and back (``Experiment.load_checkpoint``).

Saved: the settings (tags, plan module/class/digest, model and training args, rounds,
seed, deadline, minimum replies, privacy), the aggregator's name, config and state, the node
selection's name and config, the selection RNG state, the nodes and datasets chosen in
the first round, and the history (each record encoded once: ``history_log``). The plan is
found again by importing its module, which must be importable (a plan defined in a
notebook is passed back in instead); the plan's digest must match, so a resumed
experiment never trains different code unnoticed.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from fedward.core.messages import DatasetSummary
from fedward.core.plan_digest import plan_digest
from fedward.errors import PlanError, ValidationError
from fedward.learning.plan import TrainingPlan
from fedward.learning.plan_source import plan_source
from fedward.learning.setting_names import closest
from fedward.researcher.aggregators import Aggregator, aggregator_from_config
from fedward.researcher.checkpoint import Checkpoint, locate_checkpoint, read_checkpoint
from fedward.researcher.checkpoint_saver import wait_for_all_checkpoints
from fedward.researcher.experiment_privacy import ExperimentPrivacy
from fedward.researcher.federation import Federation
from fedward.researcher.history import RoundRecord
from fedward.researcher.round_journal import RoundJournal
from fedward.researcher.selection import (
    NodeSelection,
    SelectionRule,
    rng_from_state,
    rng_state,
    selection_from_config,
)

if TYPE_CHECKING:
    from fedward.researcher.experiment import Experiment

_RESTORABLE_SETTINGS = frozenset(
    {
        "rounds",
        "round_timeout_s",
        "min_replies",
        "update_codec",
        "on_round",
        "state_dir",
        "checkpoints",
        "keep_checkpoints",
        "tensorboard",
        "progress",
        "observers",
    }
)


def to_json(
    experiment: Experiment, aggregator_data: dict[str, Any], rng: dict[str, Any]
) -> dict[str, Any]:
    """The experiment's state as ``state.json`` holds it (what ``save`` writes)."""
    history = [record.to_json() for record in experiment.history]
    return _state(experiment, aggregator_data, rng, history)


def _state(
    experiment: Experiment, aggregator_data: dict[str, Any], rng: dict[str, Any], history: Any
) -> dict[str, Any]:
    plan = experiment.training_plan
    return {
        "experiment_id": experiment.experiment_id,
        "tags": experiment.tags,
        "nodes": experiment.wanted_nodes,
        "plan": {
            "module": plan.__module__,
            "class": plan.__name__,
            "digest": experiment.plan_digest,
        },
        "model_args": experiment.model_args,
        "training_args": experiment.training_args,
        "rounds": experiment.rounds,
        "seed": experiment.seed,
        "round_timeout_s": experiment.round_timeout_s,
        "min_replies": experiment.min_replies,
        "update_codec": experiment.update_codec,
        "aggregator": {
            "name": experiment.aggregator.name,
            "config": experiment.aggregator.config(),
            "state": aggregator_data,
        },
        "selection": {"name": experiment.selection.name, "config": experiment.selection.config()},
        "selection_rng": rng,
        "datasets": {n: msgspec.to_builtins(d) for n, d in experiment.nodes().items()},
        "history": history,
        "privacy": experiment.privacy.config(),
    }


def save_round(experiment: Experiment, journal: RoundJournal | None) -> None:
    """Checkpoint the round just finished, if checkpoints are on (its journal, which
    exists then, is removed once the checkpoint is complete)."""
    directory = experiment.checkpoint_dir()
    if directory is not None and journal is not None:
        save(experiment, directory, rng_state(experiment._rng), journal.remove)


def save(
    experiment: Experiment, directory: Path, rng: dict[str, Any], then: Callable[[], None]
) -> None:
    """Checkpoint the experiment as it stands after its last round; ``then`` runs once the
    checkpoint is complete. Finished on a thread beside the next round (``checkpoint_saver``)
    unless the aggregator keeps tensors or an update codec keeps references (those change
    in place during the next round), or this is the experiment's first checkpoint (a
    crash before it is complete would leave none to resume from): those are saved before
    the next round starts."""
    tensors, aggregator_data = experiment.aggregator.state()
    # A snapshot: the thread writes it while the researcher's own dicts may change. The
    # history, which grows with every round, is not copied: its records are final and
    # the log keeps them encoded (``history_log``), so a checkpoint costs the same at
    # round 1000 as at round 1.
    state = copy.deepcopy(_state(experiment, aggregator_data, rng, []))
    state["history"] = experiment.history_log.sync(experiment.history)
    saver, rounds_done, codec = (
        experiment.checkpoint_saver,
        len(experiment.history),
        experiment.codec_rounds,
    )

    def done() -> None:
        if codec is not None:  # the reference the nodes hold (update codecs)
            codec.save(directory, rounds_done)
        then()

    saver.save(
        directory,
        rounds_done,
        experiment.aggregated_params(),
        tensors,
        state,
        experiment.keep_checkpoints,
        done,
        background=not tensors and codec is None and saver.last is not None,
    )


def _plan_class(saved: Mapping[str, Any], given: type[TrainingPlan] | None) -> type[TrainingPlan]:
    if given is None:
        module_name, class_name = str(saved["module"]), str(saved["class"])
        if module_name == "__main__":
            raise PlanError(
                f"the checkpoint's plan {class_name} was defined in a script or notebook",
                hint="pass training_plan= to load_checkpoint",
            )
        try:
            given = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise PlanError(
                f"cannot import the checkpoint's plan {module_name}.{class_name}: {exc}",
                hint="pass training_plan= to load_checkpoint",
            ) from exc
    if not (isinstance(given, type) and issubclass(given, TrainingPlan)):
        raise PlanError(f"{given!r} is not a TrainingPlan subclass")
    if plan_digest(plan_source(given)) != saved["digest"]:
        raise PlanError(
            f"the source of plan {given.__name__} changed since the checkpoint was saved",
            hint="resume with the plan's code as it was, or start a new experiment",
        )
    return given


def load(
    cls: type[Experiment],
    where: Path | str,
    *,
    federation: Federation | None,
    state_dir: Path | None,
    experiment_id: str | None,
    training_plan: type[TrainingPlan] | None,
    aggregator: Aggregator | None,
    node_selection: NodeSelection | SelectionRule | None,
    settings: Mapping[str, Any],
) -> Experiment:
    for name in sorted(settings):
        if name not in _RESTORABLE_SETTINGS:
            near = closest(name, _RESTORABLE_SETTINGS)
            raise ValidationError(
                f"load_checkpoint cannot change {name}"
                + (f"; did you mean {near!r}?" if near else ""),
                hint="allowed: " + ", ".join(sorted(_RESTORABLE_SETTINGS)),
            )
    owned = False
    if str(where) == "latest" and state_dir is None:
        if federation is None:
            from fedward.researcher.connect import connect

            federation, owned = connect(), True
        state_dir = federation.state_dir
    wait_for_all_checkpoints()  # one this process is still writing may be the one wanted
    checkpoint = read_checkpoint(locate_checkpoint(where, state_dir, experiment_id))
    state = checkpoint.state
    if aggregator is None:
        saved = state["aggregator"]
        aggregator = aggregator_from_config(saved["name"], saved["config"])
    if node_selection is None:
        node_selection = selection_from_config(
            state["selection"]["name"], state["selection"]["config"]
        )
    options: dict[str, Any] = {
        "rounds": state["rounds"],
        "round_timeout_s": state["round_timeout_s"],
        "min_replies": state["min_replies"],
        "update_codec": state.get("update_codec", "none"),
        # By default the experiment keeps saving where it was found.
        "state_dir": checkpoint.path.parent.parent.parent,
        **settings,
    }
    experiment = cls(
        tags=state["tags"],
        training_plan=_plan_class(state["plan"], training_plan),
        model_args=state["model_args"],
        training_args=state["training_args"],
        aggregator=aggregator,
        nodes=state["nodes"],
        federation=federation,
        experiment_id=state["experiment_id"],
        seed=state["seed"],
        node_selection=node_selection,
        **ExperimentPrivacy.settings_from(state.get("privacy")),
        **options,
    )
    experiment._owns_federation = owned or federation is None
    aggregator.load_state(checkpoint.aggregator_tensors, state["aggregator"]["state"])
    if experiment.codec_rounds is not None:
        experiment.codec_rounds.restore(checkpoint.path.parent, checkpoint.rounds_done)
    _restore(experiment, checkpoint, state)
    return experiment


def _restore(experiment: Experiment, checkpoint: Checkpoint, state: Mapping[str, Any]) -> None:
    """Where the checkpointed experiment stood: parameters, history, datasets, RNG."""
    history = [RoundRecord.from_json(r) for r in state["history"]]
    experiment._global = checkpoint.params
    experiment.history = history
    experiment.history_log.sync(history)  # encoded now, not on the next round's path
    experiment._datasets = {
        n: msgspec.convert(d, DatasetSummary) for n, d in state["datasets"].items()
    }
    experiment._rng = rng_from_state(state["selection_rng"])
    experiment.privacy.replay(history)
    experiment.checkpoint_saver.last = checkpoint.path
