"""A setting nobody reads is an error, never silently ignored.

A training argument, a model argument or an experiment-file key that fedward does not
know would do nothing: a typo (``batchsize``), another framework's name (Fed-BioMed's
``loader_args``, ``dry_run``) or a knob that lives elsewhere (a sklearn plan's learning
rate is ``optimizer_args={"lr": ...}``, not ``learning_rate``). ``unknown_setting`` makes
the error that names the closest valid key, or says where the setting lives.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping

from fedward.errors import FedwardError, ValidationError

_LEARNING_RATE = "the learning rate is a training argument: optimizer_args={'lr': 0.01}"

#: Training arguments of other tools (Fed-BioMed mostly) and where fedward has them.
TRAINING_ARG_HINTS: Mapping[str, str] = {
    "learning_rate": _LEARNING_RATE,
    "lr": _LEARNING_RATE,
    "eta0": _LEARNING_RATE,
    "dry_run": "num_updates=1 trains on a single batch, for a quick end-to-end check",
    "loader_args": "batch_size=... is a training argument of its own; batches are drawn in "
    "an order seeded by the experiment (no shuffle or loader options)",
    "test_batch_size": "evaluation uses batch_size",
    "test_metric_args": "metrics take no arguments: test_metrics=['accuracy', 'f1', ...]",
    "random_seed": "the Experiment's seed= seeds everything, the nodes' training included",
    "random_seed_shuffling_data": "the Experiment's seed= seeds the batch order",
    "shuffle_testing_dataset": "the held-out share is drawn from the Experiment's seed",
    "share_persistent_buffers": "persistent buffers always travel, as buffer:<name>",
    "dp_args": "fedward's plans offer no differential privacy",
    "dp_arguments": "fedward's plans offer no differential privacy",
}


def closest(name: str, valid: Iterable[str]) -> str | None:
    """The valid name ``name`` most likely meant, if one is close enough."""
    found = difflib.get_close_matches(name, sorted(valid), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_setting(
    kind: str,
    name: str,
    valid: Iterable[str],
    hints: Mapping[str, str] | None = None,
    error: Callable[..., FedwardError] = ValidationError,
) -> FedwardError:
    """The error for setting ``name`` of ``kind`` (e.g. "training argument"), which is not
    among ``valid``: it says where the setting lives (``hints``) or the closest valid name,
    and lists the valid ones."""
    valid = sorted(valid)
    said = (hints or {}).get(name)
    near = closest(name, valid)
    message = f"unknown {kind} {name!r}"
    if said:
        message += f": {said}"
    elif near:
        message += f"; did you mean {near!r}?"
    return error(message, hint="valid: " + (", ".join(valid) or "none"))


def check_names(
    kind: str,
    given: Iterable[str],
    valid: Iterable[str],
    hints: Mapping[str, str] | None = None,
    error: Callable[..., FedwardError] = ValidationError,
) -> None:
    """Raise ``unknown_setting`` for the first of ``given`` not in ``valid``."""
    allowed = set(valid)
    for name in sorted(given):
        if name not in allowed:
            raise unknown_setting(kind, name, allowed, hints, error)
