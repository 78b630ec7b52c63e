"""Robust rules: coordinate-wise median, trimmed mean, Krum.

They bound the influence of a few bad updates (faulty or malicious nodes), and they are
not linear in the updates, so they cannot stream: each needs every update of the round
at once. They hold them in an ``UpdateSpool`` (memory while small, a memory-mapped file
beyond ``memory_limit_mb``) and work a slice of coordinates at a time.

All three treat the nodes alike: a sample count is only a node's claim, and one node
claiming 2**53 samples must not outweigh the others. That holds for buffers and integer
parameters too (which other rules average by sample count): they go through the same
rule, in a spool of their own so that Krum's distances stay those of the trained weights
(Krum averages the buffers of the updates it selected); integers are rounded back.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fedward.core.aggregation import Layout, check_layout, layout_of
from fedward.core.params import Params
from fedward.errors import ValidationError
from fedward.researcher.aggregators.base import (
    Aggregator,
    layout_or_infer,
    stepped_layout,
)
from fedward.researcher.aggregators.spool import UpdateSpool


class SpooledAggregator(Aggregator):
    """Collects the round's updates in a spool; subclasses combine them in ``combine``."""

    streaming = False

    def __init__(self, memory_limit_mb: float = 64.0, spool_dir: Path | str | None = None) -> None:
        self.memory_limit_mb = float(memory_limit_mb)
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self._layout: Layout = {}
        self._stepped: Layout = {}
        self._spool: UpdateSpool | None = None
        self._others: UpdateSpool | None = None
        self._order: list[str] = []

    def begin_round(
        self, global_params: Params, round_index: int, population: int | None = None
    ) -> None:
        self.close()
        self._layout = layout_of(global_params)
        self._stepped = stepped_layout(self._layout)
        limit = int(self.memory_limit_mb * (1 << 20))
        self._spool = UpdateSpool(self._stepped, memory_limit_bytes=limit, directory=self.spool_dir)
        others = {n: spec for n, spec in self._layout.items() if n not in self._stepped}
        self._others = UpdateSpool(others, memory_limit_bytes=limit, directory=self.spool_dir)
        self._order = list(global_params)

    def add(
        self,
        node_id: str,
        update: Mapping[str, np.ndarray],
        weight: float,
        layout: Layout | None = None,
        extras: Mapping[str, Mapping[str, np.ndarray]] | None = None,
    ) -> None:
        if self._spool is None or self._others is None:
            raise ValidationError("begin_round must come before add")
        if not np.isfinite(weight) or weight <= 0:
            raise ValidationError(f"aggregation weight must be positive, got {weight}")
        check_layout(self._layout, layout_or_infer(update, layout))
        self._others.add(node_id, update)
        try:
            self._spool.add(node_id, update)
        except ValidationError:
            self._others.drop_last()  # a refused update leaves the round as it was
            raise

    def finish(self) -> Params:
        if self._spool is None or self._others is None or not len(self._spool):
            raise ValidationError("no update to aggregate")
        try:
            stepped = self._spool.unflatten(self.combine(self._spool))
            others = self._others.unflatten(self.combine_others(self._others))
        finally:
            self.close()  # the spools live for one round
        merged = {**stepped, **others}
        return {name: merged[name] for name in self._order}

    @abstractmethod
    def combine(self, spool: UpdateSpool) -> np.ndarray:
        """The flat float64 result over the spooled rows."""

    def combine_others(self, spool: UpdateSpool) -> np.ndarray:
        """The same for buffers and integer parameters; by default the same rule."""
        return self.combine(spool)

    def close(self) -> None:
        for spool in (self._spool, self._others):
            if spool is not None:
                spool.close()
        self._spool = self._others = None

    def config(self) -> dict[str, Any]:
        return {"memory_limit_mb": self.memory_limit_mb}


class CoordinateMedian(SpooledAggregator):
    """The median of each coordinate over the nodes (Yin et al., 2018)."""

    name = "median"

    def combine(self, spool: UpdateSpool) -> np.ndarray:
        out = np.empty(spool.size)
        for start, stop, rows in spool.chunks():
            out[start:stop] = np.median(rows, axis=0)
        return out


class TrimmedMean(SpooledAggregator):
    """Per coordinate, drop the ``trim_ratio`` share of largest and of smallest values,
    average the rest (Yin et al., 2018). ``floor(trim_ratio * n)`` values go on each side."""

    name = "trimmed_mean"

    def __init__(
        self,
        trim_ratio: float = 0.1,
        memory_limit_mb: float = 64.0,
        spool_dir: Path | str | None = None,
    ) -> None:
        super().__init__(memory_limit_mb, spool_dir)
        if not 0 <= trim_ratio < 0.5:
            raise ValidationError(f"trim_ratio must be in [0, 0.5), got {trim_ratio}")
        self.trim_ratio = float(trim_ratio)

    def combine(self, spool: UpdateSpool) -> np.ndarray:
        n = len(spool)
        cut = int(np.floor(self.trim_ratio * n))
        out = np.empty(spool.size)
        for start, stop, rows in spool.chunks():
            out[start:stop] = np.sort(rows, axis=0)[cut : n - cut].mean(axis=0)
        return out

    def config(self) -> dict[str, Any]:
        return {**super().config(), "trim_ratio": self.trim_ratio}


class Krum(SpooledAggregator):
    """Krum (Blanchard et al., 2017): the update closest to its ``n - f - 2`` nearest
    neighbours (squared distances), ``f`` being the number of ``byzantine`` nodes to
    tolerate; with ``multi = m > 1``, the mean of the ``m`` best (Multi-Krum). Needs at
    least ``f + 3`` updates (the guarantee itself needs ``n > 2f + 2``)."""

    name = "krum"

    def __init__(
        self,
        byzantine: int = 1,
        multi: int = 1,
        memory_limit_mb: float = 64.0,
        spool_dir: Path | str | None = None,
    ) -> None:
        super().__init__(memory_limit_mb, spool_dir)
        if byzantine < 0 or multi < 1:
            raise ValidationError("Krum needs byzantine >= 0 and multi >= 1")
        self.byzantine = int(byzantine)
        self.multi = int(multi)
        #: Node ids whose updates the last round kept.
        self.selected: list[str] = []

    def scores(self, spool: UpdateSpool) -> np.ndarray:
        n = len(spool)
        neighbours = n - self.byzantine - 2
        if neighbours < 1 or n < self.multi:
            raise ValidationError(
                f"Krum with byzantine={self.byzantine}, multi={self.multi} needs at least "
                f"{max(self.byzantine + 3, self.multi)} updates, got {n}",
                hint="lower byzantine, or raise min_replies so such a round fails earlier",
            )
        distances = np.zeros((n, n))
        for _, _, rows in spool.chunks():
            for i in range(n):
                distances[i] += np.square(rows - rows[i]).sum(axis=1)
        closest = np.sort(distances, axis=1)[:, 1 : neighbours + 1]  # column 0: itself
        return np.asarray(closest.sum(axis=1))

    def combine(self, spool: UpdateSpool) -> np.ndarray:
        best = np.argsort(self.scores(spool), kind="stable")[: self.multi]
        self.selected = [spool.node_ids[i] for i in sorted(best)]
        return self._mean_of_selected(spool)

    def combine_others(self, spool: UpdateSpool) -> np.ndarray:
        # The buffers of the updates Krum chose: scoring them too would let data
        # statistics on another scale (squared feature means) decide the selection.
        return self._mean_of_selected(spool)

    def _mean_of_selected(self, spool: UpdateSpool) -> np.ndarray:
        out = np.zeros(spool.size)
        for index, node_id in enumerate(spool.node_ids):
            if node_id in self.selected:
                out += spool.row(index)
        return out / len(self.selected)

    def config(self) -> dict[str, Any]:
        return {**super().config(), "byzantine": self.byzantine, "multi": self.multi}
