"""Aggregators: how node updates become the next global parameters.

All work on name -> ndarray mappings, whatever framework the plan uses.

- ``base``               ``Aggregator`` interface (call order, atomic ``add``), shared checks
- ``fedavg``             ``FedAvg``, ``FedProx`` (streaming)
- ``scaffold``           ``Scaffold`` (streaming; control variates kept per node on disk)
- ``server_optimizers``  ``FedAdam``, ``FedYogi``, ``FedAdagrad`` (streaming)
- ``robust``             ``CoordinateMedian``, ``TrimmedMean``, ``Krum`` (cannot stream: spooled)
- ``spool`` / ``shelf``  disk-backed storage that keeps the researcher's memory bounded

``aggregator_from_config(name, config)`` rebuilds one from its ``name`` and ``config()``
(checkpoints, ``fedward researcher run``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from fedward.errors import ValidationError
from fedward.learning.setting_names import check_names
from fedward.researcher.aggregators.base import Aggregator
from fedward.researcher.aggregators.fedavg import FedAvg, FedProx
from fedward.researcher.aggregators.robust import CoordinateMedian, Krum, TrimmedMean
from fedward.researcher.aggregators.scaffold import Scaffold
from fedward.researcher.aggregators.server_optimizers import FedAdagrad, FedAdam, FedYogi

AGGREGATORS: dict[str, type[Aggregator]] = {
    cls.name: cls
    for cls in (
        FedAvg,
        FedProx,
        Scaffold,
        FedAdam,
        FedYogi,
        FedAdagrad,
        CoordinateMedian,
        TrimmedMean,
        Krum,
    )
}


def aggregator_from_config(name: str, config: Mapping[str, Any] | None = None) -> Aggregator:
    cls = AGGREGATORS.get(name.lower())
    if cls is None:
        raise ValidationError(
            f"unknown aggregator {name!r}", hint="choose among " + ", ".join(sorted(AGGREGATORS))
        )
    options = dict(config or {})
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    check_names(f"{name} aggregator argument", options, accepted)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValidationError(f"invalid arguments for aggregator {name!r}: {exc}") from exc


__all__ = [
    "AGGREGATORS",
    "Aggregator",
    "CoordinateMedian",
    "FedAdagrad",
    "FedAdam",
    "FedAvg",
    "FedProx",
    "FedYogi",
    "Krum",
    "Scaffold",
    "TrimmedMean",
    "aggregator_from_config",
]
