"""A node's weighted update as one ring vector, and the sum of such vectors back as a mean.

The vector holds ``weight * value`` of every tensor, in sorted tensor-name order, each
flattened in C order, encoded in fixed point (``ring``), then the weight itself as an
exact integer: the researcher learns only the sums, of the weighted updates and of the
weights, and divides one by the other. Both sides build the order from the global
model's layout, so a vector carries no names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from fedward.core.aggregation import Layout
from fedward.core.params import Params
from fedward.errors import FederationError, ValidationError
from fedward.privacy import ring

MASKED_TENSOR = "masked"


def vector_size(layout: Layout) -> int:
    return sum(math.prod(shape) for shape, _ in layout.values()) + 1


def masked_layout(layout: Layout) -> Layout:
    """The layout of the masked file a node uploads for a model of ``layout``."""
    return {MASKED_TENSOR: ((vector_size(layout),), np.dtype(np.uint64))}


def encode_update(
    params: Mapping[str, np.ndarray],
    layout: Layout,
    weight: int,
    fraction_bits: int,
    cohort_size: int,
) -> np.ndarray:
    if weight < 1:
        raise ValidationError("an update's weight must be at least 1")
    out = np.empty(vector_size(layout), dtype=np.uint64)
    start = 0
    for name in sorted(layout):
        value = np.asarray(params[name])
        stop = start + value.size
        out[start:stop] = ring.encode(
            value.reshape(-1).astype(np.float64) * weight, fraction_bits, cohort_size
        )
        start = stop
    out[start:] = ring.encode_integer(weight)
    return out


def decode_mean(total: np.ndarray, layout: Layout, fraction_bits: int) -> tuple[Params, int]:
    """(the weighted mean, in the layout's dtypes; the total weight) from a summed vector."""
    total_weight = int(total[-1:].view(np.int64)[0])
    if total_weight < 1:
        raise FederationError("the unmasked total weight is not positive: the sum is corrupt")
    mean: Params = {}
    start = 0
    for name in sorted(layout):
        shape, dtype = layout[name]
        stop = start + math.prod(shape)
        values = ring.decode(total[start:stop], fraction_bits) / total_weight
        if np.issubdtype(dtype, np.integer):
            values = np.rint(values)
        mean[name] = values.reshape(shape).astype(dtype)
        start = stop
    return {name: mean[name] for name in layout}, total_weight
