"""What a job may return, checked by the daemon before anything leaves the node.

A result is the worker's word, so it is read like bytes from the network: a safetensors
file with a valid header (``params_wire``), exactly the layout of the parameters the
job was sent (same names, shapes and dtypes: a federated update never changes the
model's shape, and its size is then known in advance), and finite values. Extra tensors
travel only under the names an aggregator reads, each shaped like some of the model's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fedward.core.aggregation import Layout
from fedward.errors import JobError, ProtocolError, ValidationError
from fedward.learning.plan import SCAFFOLD_DELTA_CONTROL
from fedward.protocol.params_wire import open_params

ALLOWED_EXTRAS = (SCAFFOLD_DELTA_CONTROL,)


def checked_layout(path: Path, what: str) -> Layout:
    """The layout of a parameters file the node received; ValidationError if malformed."""
    try:
        with open_params(path) as params:
            return params.layout
    except ProtocolError as exc:
        raise ValidationError(f"{what}: {exc.message}") from exc


def check_result(path: Path, layout: Layout, what: str, *, subset: bool = False) -> None:
    """``JobError`` unless ``path`` holds finite tensors of exactly ``layout`` (with
    ``subset``: of some of its tensors, as SCAFFOLD's control update, which leaves out
    buffers)."""
    try:
        with open_params(path) as params:
            got = params.layout
            expected = {n: layout[n] for n in got if n in layout} if subset else layout
            if got != expected:
                raise JobError(f"the job's {what} {_difference(got, expected)}")
            for name in params:
                values = params[name]
                if values.dtype.kind in "fc" and not np.isfinite(values).all():
                    raise JobError(f"the job's {what} hold non-finite values in {name!r}")
    except ProtocolError as exc:
        raise JobError(f"the job's {what} are not valid: {exc.message}") from exc


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
