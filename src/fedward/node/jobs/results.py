"""What a job may return, checked by the daemon before anything leaves the node.

A result is the worker's word, so it is read like bytes from the network: a safetensors
file with a valid header (``params_wire``), exactly the layout of the parameters the
job was sent (same names, shapes and dtypes: a federated update never changes the
model's shape, and its size is then known in advance), and finite values. Extra tensors
travel only under the names an aggregator reads, each shaped like some of the model's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedward.core.aggregation import Layout
from fedward.errors import JobError, ProtocolError, ValidationError
from fedward.learning.plan import SCAFFOLD_DELTA_CONTROL
from fedward.protocol.params_wire import MAX_ABS_VALUE, open_params

ALLOWED_EXTRAS = (SCAFFOLD_DELTA_CONTROL,)


def checked_layout(path: Path, what: str) -> Layout:
    """The layout of a parameters file the node received; ValidationError if malformed."""
    try:
        with open_params(path) as params:
            return params.layout
    except ProtocolError as exc:
        raise ValidationError(f"{what}: {exc.message}") from exc


@dataclass(frozen=True)
class ResultCheck:
    """What a job's result must be: exactly ``layout`` (with ``subset``: some of its
    tensors, as SCAFFOLD's control update, which leaves out buffers), finite values
    within ``MAX_ABS_VALUE``. ``what`` names the result in the ``JobError``s."""

    layout: Layout
    what: str
    subset: bool = False

    def check_layout(self, got: Layout) -> None:
        expected = (
            {n: self.layout[n] for n in got if n in self.layout} if self.subset else self.layout
        )
        if got != expected:
            raise JobError(f"the job's {self.what} {_difference(got, expected)}")

    def check_values(self, name: str, values: np.ndarray) -> None:
        """``values``: all of tensor ``name`` or any part of it."""
        if values.dtype == np.bool_ or values.size == 0:
            return
        # min and max need no temporary array, and NaN or an infinity shows in one of
        # them; as Python numbers they compare exactly with the bound.
        low, high = values.min().item(), values.max().item()
        if not (math.isfinite(low) and math.isfinite(high)):
            raise JobError(f"the job's {self.what} hold non-finite values in {name!r}")
        if low < -MAX_ABS_VALUE or high > MAX_ABS_VALUE:
            raise JobError(
                f"the job's {self.what} hold values beyond +/-{float(MAX_ABS_VALUE):.3g} "
                f"in {name!r}"
            )

    def invalid(self, error: ProtocolError) -> JobError:
        return JobError(f"the job's {self.what} are not valid: {error.message}")


def _difference(got: Layout, expected: Layout) -> str:
    extra = sorted(set(got) - set(expected))
    missing = sorted(set(expected) - set(got))
    if extra:
        return f"have tensors the model has not: {', '.join(extra[:5])}"
    if missing:
        return f"lack tensors of the model: {', '.join(missing[:5])}"
    changed = sorted(n for n in got if got[n] != expected[n])
    name = changed[0]
    return (
        f"change tensor {name!r} from {expected[name][1]}{list(expected[name][0])} "
        f"to {got[name][1]}{list(got[name][0])}"
    )
