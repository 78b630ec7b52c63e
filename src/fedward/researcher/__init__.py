"""The researcher side: define an experiment, run it across nodes, follow it.

- ``federation``   connection to the broker and upload server; request fan-out / fan-in
- ``aggregators``  ``Aggregator`` interface and ``FedAvg`` (streaming)
- ``history``      per-round, per-node records of an experiment
- ``experiment``   ``Experiment``: the rounds
- ``cli``          ``fedward researcher ...``
"""

from fedward.researcher.aggregators import Aggregator, FedAvg
from fedward.researcher.experiment import Experiment
from fedward.researcher.federation import Federation

__all__ = ["Aggregator", "Experiment", "FedAvg", "Federation"]
