"""Central differential privacy on one update: clip its change, add Gaussian noise.

The change ``d = trained - global`` of every floating tensor, taken together as one
vector, is scaled down to L2 norm at most ``clip_norm`` (so one node moves the sum by at
most ``C``), then Gaussian noise of standard deviation ``noise_std`` is added to each
coordinate. Integer tensors (counters such as BatchNorm's batch count, which would tell
how much data the node has) and the tensors named in ``frozen`` (the caller's data
statistics: feature moments, BatchNorm running statistics) keep the global value: they
would otherwise either leave the node without noise or, clipped with the weights, use
up the whole norm.

The noise is drawn from a generator seeded with 128 bits of operating-system entropy
each time, never from a seed a researcher or a plan could choose. Floating-point
samplers are known to leak through their least significant bits (Mironov 2012); this
implementation does not defend against that (see docs/privacy.md).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Collection, Mapping

import numpy as np

from fedward.errors import ValidationError


def update_norm(
    global_params: Mapping[str, np.ndarray], trained: Mapping[str, np.ndarray]
) -> float:
    total = 0.0
    for name, value in trained.items():
        if np.issubdtype(value.dtype, np.floating):
            change = value.astype(np.float64) - np.asarray(global_params[name], np.float64)
            total += float(np.sum(change * change))
    return math.sqrt(total)


def clip_and_noise(
    global_params: Mapping[str, np.ndarray],
    trained: Mapping[str, np.ndarray],
    clip_norm: float,
    noise_std: float,
    frozen: Collection[str] = (),
) -> tuple[dict[str, np.ndarray], float]:
    """(the privatised parameters, the change's norm before clipping)."""
    if not clip_norm > 0 or not noise_std >= 0:
        raise ValidationError("clip_norm must be positive and the noise non-negative")
    if set(global_params) != set(trained):
        raise ValidationError("the trained parameters do not have the global ones' names")
    moving = {n: v for n, v in trained.items() if n not in frozen}
    norm = update_norm(global_params, moving)
    scale = min(1.0, clip_norm / norm) if norm > 0 else 1.0
    rng = np.random.default_rng(secrets.randbits(128))
    out: dict[str, np.ndarray] = {}
    for name, value in trained.items():
        base = np.asarray(global_params[name])
        if name in frozen or not np.issubdtype(value.dtype, np.floating):
            out[name] = base.astype(value.dtype, copy=True)
            continue
        change = (value.astype(np.float64) - base.astype(np.float64)) * scale
        if noise_std > 0:
            change += rng.normal(0.0, noise_std, size=change.shape)
        out[name] = (base.astype(np.float64) + change).astype(value.dtype)
    return out, norm


def noise_share(noise_multiplier: float, clip_norm: float, cohort_size: int | None) -> float:
    """The noise std one node adds so that the round's sum carries ``sigma * C``: a
    ``1/sqrt(n)`` share under secure aggregation (``cohort_size`` n), where only the sum
    is seen; all of it without (``cohort_size`` None), where each update is seen."""
    share = 1.0 / math.sqrt(cohort_size) if cohort_size else 1.0
    return noise_multiplier * clip_norm * share


def node_noise_multiplier(
    noise_multiplier: float, cohort_size: int | None, threshold: int | None
) -> float:
    """The noise multiplier protecting one node's update in the worst case a round
    allows: without secure aggregation its own noise (``sigma``); with it, the shares of
    the fewest survivors the researcher can unmask (``threshold`` of ``cohort_size``):
    ``sigma * sqrt(t / n)``."""
    if not cohort_size or not threshold:
        return noise_multiplier
    return noise_multiplier * math.sqrt(threshold / cohort_size)


def aggregate_noise_multiplier(noise_multiplier: float, cohort_size: int, survivors: int) -> float:
    """The noise multiplier of a secure sum of ``survivors`` of ``cohort_size`` shares."""
    return noise_multiplier * math.sqrt(survivors / cohort_size)
