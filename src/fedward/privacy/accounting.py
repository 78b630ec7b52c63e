"""Epsilon from the mechanisms a dataset went through: Google's ``dp-accounting`` (RDP).

A ``PrivacyEvent`` is ``steps`` runs of the subsampled Gaussian mechanism with noise
multiplier ``sigma`` (noise std / clipping norm) and sampling rate ``q``:

- DP-SGD on a node (Opacus): ``q`` = batch size / dataset size, ``steps`` = optimiser
  steps, ``sigma`` = the optimiser's noise multiplier: sample-level privacy;
- central DP: one event per round with ``q = 1`` (a node knows it takes part, so no
  amplification by sampling is claimed) and ``sigma`` the noise the node's clipped update
  carries where it can be seen: node-level privacy.

Events compose (RDP, then converted at ``delta``). The RDP accountant of dp-accounting is
the same computation as Opacus' ``RDPAccountant``; ``epsilon`` is what a user of that
library gets for the same arguments.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from fedward.errors import ConfigError, ValidationError


@dataclass(frozen=True)
class PrivacyEvent:
    noise_multiplier: float
    sample_rate: float = 1.0
    steps: int = 1

    def __post_init__(self) -> None:
        if not self.noise_multiplier >= 0 or not 0 < self.sample_rate <= 1 or self.steps < 0:
            raise ValidationError(
                f"invalid privacy event: noise multiplier {self.noise_multiplier}, sampling "
                f"rate {self.sample_rate}, steps {self.steps}"
            )


def check_delta(delta: float) -> float:
    if not 0 < delta < 1:
        raise ValidationError(f"delta must be in (0, 1), got {delta}")
    return float(delta)


def epsilon(events: Iterable[PrivacyEvent], delta: float) -> float:
    """The epsilon of all ``events`` composed, at ``delta`` (inf if one has no noise)."""
    check_delta(delta)
    try:
        from dp_accounting import dp_event, rdp
    except ImportError as exc:  # pragma: no cover - the privacy extra is missing
        raise ConfigError(
            "privacy accounting needs the dp-accounting package",
            hint="pip install 'fedward[privacy]'",
        ) from exc
    accountant = rdp.RdpAccountant()
    composed = False
    for event in events:
        if event.steps == 0:
            continue
        if event.noise_multiplier == 0:
            return math.inf
        gaussian = dp_event.GaussianDpEvent(event.noise_multiplier)
        mechanism = (
            gaussian
            if event.sample_rate >= 1
            else dp_event.PoissonSampledDpEvent(event.sample_rate, gaussian)
        )
        accountant.compose(mechanism, event.steps)
        composed = True
    if not composed:
        return 0.0
    return float(accountant.get_epsilon(delta))
