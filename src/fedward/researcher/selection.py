"""Which nodes train in a round: all of them, a random fraction, or the researcher's rule.

A selection sees the round's candidates (the nodes holding matching data that are not
known to be offline, in id order), the round index and the experiment's selection RNG,
and returns the nodes to ask. The RNG is seeded from the experiment seed and saved in
every checkpoint, so a resumed experiment picks the same nodes an uninterrupted one
would have.

A custom rule is any callable ``(candidates, round_index, rng) -> iterable of node ids``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from fedward.errors import ValidationError

SelectionRule = Callable[[Sequence[str], int, np.random.Generator], Iterable[str]]


class NodeSelection(ABC):
    name: str = "selection"

    @abstractmethod
    def choose(
        self, candidates: Sequence[str], round_index: int, rng: np.random.Generator
    ) -> Iterable[str]:
        """The nodes to ask this round, among ``candidates``."""

    def select(
        self, candidates: Sequence[str], round_index: int, rng: np.random.Generator
    ) -> list[str]:
        """``choose``, checked: a non-empty set of candidates, in id order."""
        chosen = list(self.choose(list(candidates), round_index, rng))
        unknown = sorted(set(chosen) - set(candidates))
        if unknown:
            raise ValidationError(
                f"node selection {self.name} chose nodes that are not candidates: {unknown}"
            )
        if len(set(chosen)) != len(chosen):
            raise ValidationError(f"node selection {self.name} chose a node twice")
        return sorted(chosen)

    def config(self) -> dict[str, Any]:
        return {}


class AllNodes(NodeSelection):
    """Every candidate, every round (the default)."""

    name = "all"

    def choose(
        self, candidates: Sequence[str], round_index: int, rng: np.random.Generator
    ) -> Iterable[str]:
        return candidates


class RandomFraction(NodeSelection):
    """``ceil(fraction * candidates)`` nodes drawn at random each round, at least ``minimum``
    (or every candidate when there are fewer)."""

    name = "random_fraction"

    def __init__(self, fraction: float, minimum: int = 1) -> None:
        if not 0 < fraction <= 1:
            raise ValidationError(f"selection fraction must be in (0, 1], got {fraction}")
        if minimum < 1:
            raise ValidationError(f"selection minimum must be at least 1, got {minimum}")
        self.fraction = float(fraction)
        self.minimum = int(minimum)

    def choose(
        self, candidates: Sequence[str], round_index: int, rng: np.random.Generator
    ) -> Iterable[str]:
        count = min(len(candidates), max(self.minimum, math.ceil(self.fraction * len(candidates))))
        picked = rng.choice(len(candidates), size=count, replace=False)
        return [candidates[int(i)] for i in picked]

    def config(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "minimum": self.minimum}


class CustomSelection(NodeSelection):
    """A researcher's rule; it cannot be saved, so resuming needs it passed again."""

    name = "custom"

    def __init__(self, rule: SelectionRule) -> None:
        self.rule = rule

    def choose(
        self, candidates: Sequence[str], round_index: int, rng: np.random.Generator
    ) -> Iterable[str]:
        return self.rule(candidates, round_index, rng)


def as_selection(value: NodeSelection | SelectionRule | None) -> NodeSelection:
    if value is None:
        return AllNodes()
    if isinstance(value, NodeSelection):
        return value
    if callable(value):
        return CustomSelection(value)
    raise ValidationError(f"node_selection must be a NodeSelection or a callable, got {value!r}")


def selection_from_config(name: str, config: Mapping[str, Any]) -> NodeSelection:
    if name == AllNodes.name:
        return AllNodes()
    if name == RandomFraction.name:
        return RandomFraction(**dict(config))
    raise ValidationError(
        f"node selection {name!r} cannot be restored from a checkpoint",
        hint="pass node_selection= to Experiment.load_checkpoint",
    )


def selection_rng(seed: int) -> np.random.Generator:
    # A stream of its own: drawing nodes never shifts any other use of the seed.
    return np.random.Generator(np.random.PCG64([seed, 0x5E1EC7]))


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return dict(rng.bit_generator.state)


def rng_from_state(state: Mapping[str, Any]) -> np.random.Generator:
    if state.get("bit_generator") != "PCG64":
        raise ValidationError("the checkpoint's selection RNG state is not a PCG64 state")
    generator = np.random.PCG64()
    generator.state = dict(state)  # type: ignore[assignment]
    return np.random.Generator(generator)
