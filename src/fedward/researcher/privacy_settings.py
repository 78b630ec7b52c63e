"""What a researcher asks for: ``SecAgg``, ``CentralDP``, ``LocalDP`` (see docs/privacy.md).

Experiment(..., secure_aggregation=SecAgg(threshold=3),
           differential_privacy=CentralDP(clip_norm=1.0, noise_multiplier=1.0),
           max_epsilon=8.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from fedward.core.messages import DPSetup, SecAggSetup
from fedward.errors import ValidationError
from fedward.privacy.accounting import check_delta
from fedward.privacy.ring import DEFAULT_FRACTION_BITS, check_fraction_bits
from fedward.privacy.secagg_participant import check_threshold


@dataclass(frozen=True)
class SecAgg:
    """Secure aggregation: the researcher and the upload server see masked vectors only.

    ``threshold``: how many nodes must finish a round (default: a majority of the nodes
    asked; it must be more than half of them). ``fraction_bits``: fixed-point precision
    (the range and error are in ``fedward.privacy.ring``). ``step_timeout_s``: how long
    each step after training waits for the nodes."""

    threshold: int | None = None
    fraction_bits: int = DEFAULT_FRACTION_BITS
    step_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        check_fraction_bits(self.fraction_bits)
        if self.threshold is not None and self.threshold < 2:
            raise ValidationError("a secure-aggregation threshold is at least 2")
        if not self.step_timeout_s > 0:
            raise ValidationError("step_timeout_s must be positive")

    def threshold_for(self, cohort_size: int) -> int:
        threshold = self.threshold if self.threshold is not None else cohort_size // 2 + 1
        check_threshold(threshold, cohort_size)
        return threshold

    def setup(self, cohort: list[str]) -> SecAggSetup:
        return SecAggSetup(
            cohort=sorted(cohort),
            threshold=self.threshold_for(len(cohort)),
            fraction_bits=self.fraction_bits,
        )


@dataclass(frozen=True)
class DPSettings:
    """Differential privacy: clip to ``clip_norm``, noise ``noise_multiplier * clip_norm``;
    epsilon is reported at ``delta``. Use ``CentralDP`` or ``LocalDP``."""

    clip_norm: float
    noise_multiplier: float
    delta: float = 1e-5
    mode: ClassVar[Literal["central", "local"]] = "central"

    def __post_init__(self) -> None:
        if not self.clip_norm > 0 or not self.noise_multiplier >= 0:
            raise ValidationError("clip_norm must be positive and noise_multiplier >= 0")
        check_delta(self.delta)

    def setup(self) -> DPSetup:
        return DPSetup(
            mode=self.mode,
            clip_norm=self.clip_norm,
            noise_multiplier=self.noise_multiplier,
            delta=self.delta,
        )


@dataclass(frozen=True)
class CentralDP(DPSettings):
    """Node-level DP for any plan: each node's daemon clips its update's change to
    ``clip_norm`` and adds Gaussian noise so that the round's sum carries
    ``noise_multiplier * clip_norm`` (a 1/sqrt(n) share each under secure aggregation,
    all of it without, where each update is seen). Every node then weighs 1."""

    mode: ClassVar[Literal["central", "local"]] = "central"


@dataclass(frozen=True)
class LocalDP(DPSettings):
    """Sample-level DP-SGD on each node through Opacus (``TorchTrainingPlan`` only):
    per-sample gradients clipped to ``clip_norm``, Gaussian noise ``noise_multiplier *
    clip_norm`` on each batch's sum, Poisson-sampled batches. It runs in the job worker,
    beside the plan's code, so nodes do not count it towards their own policy."""

    mode: ClassVar[Literal["central", "local"]] = "local"
