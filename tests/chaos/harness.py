"""A real federation with a chaos proxy in front of the broker and the upload server.

``chaos_federation`` starts ``LocalFederation`` (Mosquitto, ``fedward uploads serve``,
node processes) with every client routed through a ``ChaosProxy``: the nodes' and the
researcher's configs name the proxies' ports, the services keep their own. Each node
holds a share of the breast-cancer table; experiments train ``SGDClassifierPlan`` with
a fixed seed, so that two runs with the same seed give bit-identical models.

``CountingFedAvg`` is FedAvg that also keeps what it was given: how many times each
node's update was added in each round (an update counted twice shows as 2), and a copy
of each update, so that a round's aggregate can be recomputed from its survivors.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from fedward.core.aggregation import Layout
from fedward.core.params import Params
from fedward.demo.breast_cancer import demo_training_args
from fedward.demo.data import breast_cancer_split
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.researcher import Experiment
from fedward.researcher.aggregators import FedAvg
from tests.chaos.proxy import ChaosProxy

TAGS = ["breast-cancer", "chaos"]
SEED = 7


class CountingFedAvg(FedAvg):
    def __init__(self) -> None:
        super().__init__()
        self.round_index = -1
        self.added: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.updates: dict[int, dict[str, tuple[Params, float]]] = defaultdict(dict)
        self.results: dict[int, Params] = {}

    def begin_round(
        self, global_params: Params, round_index: int, population: int | None = None
    ) -> None:
        super().begin_round(global_params, round_index, population)
        self.round_index = round_index
        self.added[round_index].clear()
        self.updates[round_index].clear()

    def add(
        self,
        node_id: str,
        update: Mapping[str, np.ndarray],
        weight: float,
        layout: Layout | None = None,
        extras: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        self.added[self.round_index][node_id] += 1
        self.updates[self.round_index][node_id] = ({n: np.array(update[n]) for n in update}, weight)
        super().add(node_id, update, weight, layout, extras)

    def finish(self) -> Params:
        result = super().finish()
        self.results[self.round_index] = {n: np.array(v) for n, v in result.items()}
        return result

    def counted_twice(self) -> int:
        return sum(max(0, c - 1) for per in self.added.values() for c in per.values())


def survivors_mean(updates: Mapping[str, tuple[Params, float]]) -> Params:
    """The sample-weighted mean of ``updates``, computed here, independently of FedAvg."""
    total = sum(weight for _, weight in updates.values())
    names = next(iter(updates.values()))[0]
    return {
        name: sum(params[name].astype(np.float64) * weight for params, weight in updates.values())
        / total
        for name in names
    }


@contextmanager
def chaos_federation(
    workdir: Path,
    node_ids: Sequence[str],
    *,
    seed: int = 0,
    proxied: bool = True,
    **options: Any,
) -> Iterator[LocalFederation]:
    """A started federation whose clients reach the broker and the upload server through
    ``fed.proxies["broker"]`` and ``fed.proxies["uploads"]``."""
    proxies: dict[str, ChaosProxy] = {}

    def route(service: str, host: str, port: int) -> tuple[str, int]:
        proxy = ChaosProxy(host, port, mqtt=service == "broker", seed=seed).start()
        proxies[service] = proxy
        return proxy.host, proxy.port

    split = breast_cancer_split(workdir / "data", len(node_ids))
    fed = LocalFederation(
        workdir,
        node_ids=list(node_ids),
        approval_required=False,
        client_route=route if proxied else None,
        **options,
    )
    fed.proxies = proxies  # type: ignore[attr-defined]
    fed.split = split  # type: ignore[attr-defined]
    try:
        fed.start()
        for node_id, path in zip(node_ids, split.node_files, strict=True):
            fed.add_dataset(node_id, data_type="csv", path=path, name="bc", tags=TAGS)
        fed.start_nodes()
        yield fed
    finally:
        fed.stop()
        for proxy in proxies.values():
            proxy.stop()


def experiment(
    fed: LocalFederation,
    rounds: int,
    *,
    aggregator: FedAvg | None = None,
    min_replies: int | None = None,
    round_timeout_s: float = 60.0,
    **options: Any,
) -> Experiment:
    split = fed.split  # type: ignore[attr-defined]
    return Experiment(
        tags=TAGS,
        training_plan=SGDClassifierPlan,
        model_args={"n_features": len(split.feature_names), "classes": split.classes},
        training_args=demo_training_args(),
        rounds=rounds,
        aggregator=aggregator or FedAvg(),
        min_replies=min_replies or len(fed.node_ids),
        round_timeout_s=round_timeout_s,
        federation=fed.researcher(),
        seed=SEED,
        progress=False,
        **options,
    )


def same_params(left: Params, right: Params) -> bool:
    return sorted(left) == sorted(right) and all(
        left[n].dtype == right[n].dtype and left[n].tobytes() == right[n].tobytes() for n in left
    )


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 60.0) -> float:
    """Seconds until ``condition()`` held; AssertionError naming ``what`` past the deadline."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(0.05)
    return time.monotonic() - started
