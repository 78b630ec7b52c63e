"""Training arguments shared by the shipped plans, validated once per ``train`` call.

Names follow the seed system's ``training_args`` so researchers keep their habits.
``TRAINING_ARG_NAMES`` are the ones fedward reads; any other key is refused
(``TrainingPlan.check_training_args``) unless the plan declares it in
``extra_training_args``: a setting is never silently ignored.

The node's randomness comes from the experiment's ``seed``, the node's id and the round,
never from ids drawn at random (dataset ids are): the held-out split is a function of
(seed, node id), so a node validates on the same rows in every round; the batch order of
(seed, node id, round), so it changes from round to round yet replays exactly on a rerun,
and two federations with the same data and seed train to the same parameters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from fedward.errors import ValidationError
from fedward.learning.dp import LocalDPArgs
from fedward.learning.metrics import METRIC_NAMES


@dataclass(frozen=True)
class TrainingArgs:
    batch_size: int = 32
    epochs: int = 1
    num_updates: int | None = None  # when set, replaces epochs: this many batches in all
    batch_maxnum: int | None = None  # at most this many batches per epoch
    log_interval: int = 10
    test_ratio: float = 0.2
    test_on_global_updates: bool = True
    test_on_local_updates: bool = True
    test_metrics: tuple[str, ...] = ()
    seed: int = 0
    fedprox_mu: float = 0.0
    use_gpu: bool = False
    optimizer_args: Mapping[str, Any] | None = None
    #: Set by the node only, from the request's local DP (``learning.dp``).
    differential_privacy: LocalDPArgs | None = None

    @classmethod
    def from_mapping(
        cls, args: Mapping[str, Any], default_metrics: Sequence[str] = ()
    ) -> TrainingArgs:
        metrics = args.get("test_metrics", args.get("test_metric", default_metrics))
        if isinstance(metrics, str):
            metrics = [metrics]
        metrics = tuple(str(m).lower() for m in metrics)
        unknown = sorted(set(metrics) - METRIC_NAMES)
        if unknown:
            raise ValidationError(
                f"unknown test metric(s) {', '.join(unknown)}",
                hint="choose among " + ", ".join(sorted(METRIC_NAMES)),
            )
        optimizer_args = args.get("optimizer_args") or {}
        if not isinstance(optimizer_args, Mapping):
            raise ValidationError("training argument optimizer_args must be a mapping")
        return cls(
            batch_size=_int(args, "batch_size", 32, minimum=1),
            epochs=_int(args, "epochs", 1, minimum=1),
            num_updates=_optional_int(args, "num_updates"),
            batch_maxnum=_optional_int(args, "batch_maxnum"),
            log_interval=_int(args, "log_interval", 10, minimum=1),
            test_ratio=_ratio(args),
            test_on_global_updates=_bool(args, "test_on_global_updates", True),
            test_on_local_updates=_bool(args, "test_on_local_updates", True),
            test_metrics=metrics,
            seed=_int(args, "seed", 0, minimum=0),
            fedprox_mu=_float(args, "fedprox_mu", 0.0),
            use_gpu=_bool(args, "use_gpu", False),
            optimizer_args=dict(optimizer_args),
            differential_privacy=LocalDPArgs.from_training_args(args),
        )

    def batches_per_epoch(self, n_train: int) -> int:
        batches = -(-n_train // self.batch_size)
        return min(batches, self.batch_maxnum) if self.batch_maxnum else batches


#: Every training argument fedward's plans read (``test_metric``: ``test_metrics``'s old name).
TRAINING_ARG_NAMES = frozenset(f.name for f in fields(TrainingArgs)) | {"test_metric"}


def _int(args: Mapping[str, Any], name: str, default: int, minimum: int) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"training argument {name} must be an integer >= {minimum}")
    return value


def _optional_int(args: Mapping[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None or value == 0:
        return None
    return _int(args, name, 0, minimum=1)


def _float(args: Mapping[str, Any], name: str, default: float) -> float:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValidationError(f"training argument {name} must be a number >= 0")
    return float(value)


def _ratio(args: Mapping[str, Any]) -> float:
    value = _float(args, "test_ratio", 0.2)
    if value >= 1:
        raise ValidationError("training argument test_ratio must be in [0, 1)")
    return value


def _bool(args: Mapping[str, Any], name: str, default: bool) -> bool:
    value = args.get(name, default)
    if not isinstance(value, bool):
        raise ValidationError(f"training argument {name} must be true or false")
    return value


def _seed_from(*parts: str | bytes) -> int:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode("utf-8") if isinstance(part, str) else part)
        hasher.update(b"\x00")
    return int.from_bytes(hasher.digest()[:8], "little")


def held_out_split(
    n_samples: int, test_ratio: float, seed: int, node_id: str
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices): the same for every round of a (seed, node)."""
    order = np.random.default_rng(_seed_from("split", str(seed), node_id)).permutation(n_samples)
    n_test = round(n_samples * test_ratio)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def round_rng(seed: int, node_id: str, round_index: int) -> np.random.Generator:
    """Randomness for one round's batch order (and a torch plan's dropout and draws)."""
    return np.random.default_rng(_seed_from("round", str(seed), node_id, str(round_index)))
