"""Model parameters: an ordered mapping of names to numpy arrays.

This is the framework-neutral currency between training plans (sklearn, torch), the
wire format (safetensors, see ``fedward.protocol.params_wire``) and aggregators.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fedward.errors import ValidationError

Params = dict[str, np.ndarray]


def params_nbytes(params: Mapping[str, np.ndarray]) -> int:
    return sum(int(a.nbytes) for a in params.values())


def params_count(params: Mapping[str, np.ndarray]) -> int:
    return sum(int(a.size) for a in params.values())


def check_same_layout(reference: Mapping[str, np.ndarray], other: Mapping[str, np.ndarray]) -> None:
    """Raise ValidationError unless ``other`` has the names, shapes and dtypes of ``reference``."""
    if reference.keys() != other.keys():
        missing = sorted(set(reference) - set(other))
        extra = sorted(set(other) - set(reference))
        raise ValidationError(f"parameter names differ: missing {missing}, unexpected {extra}")
    for name, ref in reference.items():
        arr = other[name]
        if arr.shape != ref.shape or arr.dtype != ref.dtype:
            raise ValidationError(
                f"parameter {name!r} is {arr.dtype}{list(arr.shape)}, "
                f"expected {ref.dtype}{list(ref.shape)}"
            )
