"""Fixed-point encoding of real vectors in the ring Z/2^64, where masks cancel exactly.

A value ``x`` becomes ``round(x * 2^f)`` as a two's-complement 64-bit integer; numpy's
``uint64`` arithmetic wraps modulo 2^64, which is the ring. The sum of encodings decodes
to the sum of the values as long as it stays in range:

- range: every partial sum must satisfy ``|sum| < 2^(63 - f)``. A node of a cohort of
  ``n`` therefore refuses to encode a value with ``|x| >= 2^(63 - f) / n``
  (``max_abs_value``): ``n`` such values can never wrap.
- error: rounding moves each encoded value by at most ``2^-(f + 1)``, so a sum of ``n``
  encodings is off by at most ``n * 2^-(f + 1)``, and a weighted mean of total weight
  ``W`` (each weight at least 1) by at most ``n * 2^-(f + 1) / W <= 2^-(f + 1)``
  (``mean_error_bound``). With the default ``f = 24`` that is 3e-8 per coordinate, and
  the range of one node's weighted value is 2^39 / n (5.5e11 / n).
"""

from __future__ import annotations

import numpy as np

from fedward.errors import ValidationError

DEFAULT_FRACTION_BITS = 24
MIN_FRACTION_BITS, MAX_FRACTION_BITS = 8, 40


def check_fraction_bits(fraction_bits: int) -> int:
    if not MIN_FRACTION_BITS <= fraction_bits <= MAX_FRACTION_BITS:
        raise ValidationError(
            f"fraction_bits must be in [{MIN_FRACTION_BITS}, {MAX_FRACTION_BITS}], "
            f"got {fraction_bits}"
        )
    return fraction_bits


def max_abs_value(fraction_bits: int, cohort_size: int) -> float:
    """The largest magnitude one of ``cohort_size`` summands may have."""
    return float(2 ** (63 - fraction_bits)) / max(1, cohort_size)


def mean_error_bound(fraction_bits: int, summands: int, total_weight: float) -> float:
    """How far a decoded weighted mean can be from the exact one (rounding only)."""
    return summands * 2.0 ** -(fraction_bits + 1) / max(total_weight, 1.0)


def encode(values: np.ndarray, fraction_bits: int, cohort_size: int) -> np.ndarray:
    """``values`` (any real dtype) as ring elements; ValidationError if out of range."""
    scaled = np.asarray(values, dtype=np.float64) * float(2**fraction_bits)
    if not np.all(np.isfinite(scaled)):
        raise ValidationError("an update to encode holds NaN or infinite values")
    limit = max_abs_value(fraction_bits, cohort_size) * float(2**fraction_bits)
    if scaled.size and float(np.max(np.abs(scaled))) >= limit:
        raise ValidationError(
            f"an update value exceeds the secure-aggregation range "
            f"(|weight x value| < {limit / 2**fraction_bits:.3g} with {fraction_bits} "
            f"fraction bits and {cohort_size} nodes)",
            hint="use fewer fraction_bits, or clip the update",
        )
    return np.rint(scaled).astype(np.int64).view(np.uint64)


def encode_integer(value: int) -> np.ndarray:
    """An exact integer (a sample count) as a one-element ring vector, scale 1."""
    return np.array([value], dtype=np.int64).view(np.uint64)


def decode(ring_values: np.ndarray, fraction_bits: int) -> np.ndarray:
    """Ring elements back to float64 (two's complement, then the scale removed)."""
    signed = np.asarray(ring_values, dtype=np.uint64).view(np.int64)
    return signed.astype(np.float64) / float(2**fraction_bits)
