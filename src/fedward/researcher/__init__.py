"""The researcher side: define an experiment, run it across nodes, follow it.

- ``experiment``        ``Experiment``: the rounds, checkpoints, plots (the entry point)
- ``federation``        connection to the broker and upload server; request fan-out / fan-in
- ``connect``           a ``Federation`` from the researcher's configuration
- ``aggregators``       FedAvg, FedProx, SCAFFOLD, FedAdam/FedYogi/FedAdagrad, median,
                        trimmed mean, Krum
- ``discovery``         which dataset of which node, found by tags
- ``selection``         which nodes train in a round (all, a random fraction, a callable)
- ``experiment_round``  one round of an experiment: node draw, observers, journal, enough
                        updates?, aggregation, record, checkpoint
- ``rounds``            one round: requests out, updates folded in node order, drop-outs
- ``secure_rounds``     one round under secure aggregation (``privacy_settings.SecAgg``)
- ``experiment_privacy`` DP settings on requests, epsilon per round, ``max_epsilon``
- ``train_requests``    what a round sends each node: the plan's upload, the request
- ``round_journal``     a round in progress, so that a crash inside it can be resumed
- ``history``           per-round, per-node records of an experiment; ``history_log``
                        each record encoded once for the checkpoints
- ``checkpoint``        checkpoint files; ``experiment_state`` the experiment in them
- ``monitor``           observer interface; ``progress`` (live line), ``tensorboard``
                        (+ ``tfevents``, the event-file format), ``plot`` (PNG)
- ``plan_review``       plan approval requests and status
- ``experiment_file``   ``experiment.toml`` for ``fedward researcher run``
- ``cli``               ``fedward researcher ...``
- ``analysis``          the history as a DataFrame, past rounds' parameters
- ``fedbiomed_names``   Fed-BioMed's names, refused with fedward's
"""

from fedward.researcher.aggregators import (
    Aggregator,
    CoordinateMedian,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
    Krum,
    Scaffold,
    TrimmedMean,
)
from fedward.researcher.experiment import Experiment
from fedward.researcher.federation import Federation
from fedward.researcher.privacy_settings import CentralDP, LocalDP, SecAgg
from fedward.researcher.selection import AllNodes, NodeSelection, RandomFraction

__all__ = [
    "Aggregator",
    "AllNodes",
    "CentralDP",
    "CoordinateMedian",
    "Experiment",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedProx",
    "FedYogi",
    "Federation",
    "Krum",
    "LocalDP",
    "NodeSelection",
    "RandomFraction",
    "Scaffold",
    "SecAgg",
    "TrimmedMean",
]


def __getattr__(name: str) -> object:
    # Fed-BioMed's users import its names from here: say fedward's.
    from fedward.researcher.fedbiomed_names import researcher_name

    error = researcher_name(name)
    if error is not None:
        raise error
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
