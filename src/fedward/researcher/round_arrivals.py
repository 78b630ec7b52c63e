"""An update announced by a node's reply (``Arrival``), and the fixed order updates are
folded in (``OrderedFold``): whatever order nodes answer in, the sums are the same."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fedward.core.messages import TrainReply


@dataclass
class Arrival:
    node_id: str
    reply: TrainReply
    params_path: Path
    extras_paths: dict[str, Path] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def discard(self) -> None:
        self.params_path.unlink(missing_ok=True)
        for path in self.extras_paths.values():
            path.unlink(missing_ok=True)


class OrderedFold:
    """Releases arrivals in a fixed node order; a dropped node (None) releases its turn."""

    def __init__(self, order: Sequence[str]) -> None:
        self._order = list(order)
        self._next = 0
        self._held: dict[str, Arrival | None] = {}

    def resolve(self, node_id: str, arrival: Arrival | None) -> list[Arrival]:
        self._held[node_id] = arrival
        ready: list[Arrival] = []
        while self._next < len(self._order) and self._order[self._next] in self._held:
            item = self._held.pop(self._order[self._next])
            self._next += 1
            if item is not None:
                ready.append(item)
        return ready
