"""Median and spread of a handful of timings (the benchmark's only statistics)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def summary(values: Sequence[float]) -> dict[str, float]:
    """``median``, ``min``, ``max`` and ``iqr`` (interquartile range; 0 for fewer than 2)."""
    if not values:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "iqr": 0.0}
    ordered = sorted(values)
    iqr = 0.0
    if len(ordered) >= 2:
        quartiles = statistics.quantiles(ordered, n=4, method="inclusive")
        iqr = quartiles[2] - quartiles[0]
    return {
        "median": statistics.median(ordered),
        "min": ordered[0],
        "max": ordered[-1],
        "iqr": iqr,
        "n": float(len(ordered)),
    }
