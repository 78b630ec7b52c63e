"""Local differential privacy for torch plans: DP-SGD through Opacus.

When a train request asks for local DP, the node puts its settings in the training
arguments under ``differential_privacy`` (the node sets that key itself; a researcher's
own value is dropped). ``PrivateTraining`` then wraps the round's model, optimizer and
data the way Opacus' ``PrivacyEngine.make_private`` does: per-sample gradients clipped to
``clip_norm``, Gaussian noise of ``noise_multiplier * clip_norm`` on each batch's sum,
batches drawn by Poisson sampling at rate ``batch_size / n``. The round reports
``dp_steps`` and ``dp_sample_rate`` in its metrics, which is what the accountant needs.

Every sampled batch counts as a step, an empty one included (the noise is still drawn),
so the count never under-states what was spent. Models with layers Opacus cannot make
private (BatchNorm) are refused with the fix in the hint.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from fedward.errors import PlanError, ValidationError

DP_STEPS, DP_SAMPLE_RATE = "dp_steps", "dp_sample_rate"


@dataclass(frozen=True)
class LocalDPArgs:
    clip_norm: float
    noise_multiplier: float
    delta: float

    @classmethod
    def from_training_args(cls, args: Mapping[str, Any]) -> LocalDPArgs | None:
        settings = args.get("differential_privacy")
        if settings is None:
            return None
        if not isinstance(settings, Mapping):
            raise ValidationError("training argument differential_privacy must be a mapping")
        try:
            found = cls(
                float(settings["clip_norm"]),
                float(settings["noise_multiplier"]),
                float(settings["delta"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"invalid differential_privacy settings: {exc}") from exc
        if not found.clip_norm > 0 or not found.noise_multiplier >= 0:
            raise ValidationError("differential_privacy needs clip_norm > 0, noise_multiplier >= 0")
        return found


class PrivateTraining:
    """Opacus' private module, optimizer and Poisson-sampled loader for one round."""

    def __init__(
        self,
        model: Any,
        optimizer: Any,
        train_data: Any,
        batch_size: int,
        dp: LocalDPArgs,
        seed: int,
    ) -> None:
        import torch

        try:
            from opacus import PrivacyEngine
            from opacus.validators import ModuleValidator
        except ImportError as exc:  # pragma: no cover - the torch extra brings opacus
            raise PlanError("local DP needs the opacus package on the node") from exc
        model.train()  # Opacus checks the model in the mode it will train in
        problems = ModuleValidator.validate(model, strict=False)
        if problems:
            raise PlanError(
                f"the model cannot be trained with DP-SGD: {problems[0]}",
                hint="replace BatchNorm with GroupNorm (opacus' ModuleValidator.fix does it)",
            )
        generator = torch.Generator().manual_seed(seed)
        loader = torch.utils.data.DataLoader(
            train_data, batch_size=batch_size, generator=generator, num_workers=0
        )
        engine = PrivacyEngine(accountant="rdp")
        self.module, self.optimizer, self.loader = engine.make_private(
            module=model,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.clip_norm,
            poisson_sampling=True,
        )
        self.sample_rate = 1.0 / len(loader)
        self.steps = 0

    @classmethod
    def for_round(
        cls, model: Any, optimizer: Any, data: Any, args: Any, seed: int, scaffold: object
    ) -> PrivateTraining | None:
        """DP-SGD for this round when the node asked for local DP (``args``: the round's
        ``TrainingArgs``), else None."""
        if args.differential_privacy is None:
            return None
        if scaffold:
            raise PlanError("local DP and SCAFFOLD's corrected gradients cannot be combined")
        return cls(model, optimizer, data, args.batch_size, args.differential_privacy, seed)

    def batches(
        self, epochs: int, num_updates: int | None, batch_maxnum: int | None
    ) -> Iterator[Any]:
        """The sampled batches (not the empty ones), counting every step."""
        for _ in range(10**9):
            for index, (inputs, targets) in enumerate(self.loader):
                if batch_maxnum and index >= batch_maxnum:
                    break
                self.steps += 1
                if len(inputs):
                    yield inputs, targets
                else:
                    self.optimizer.zero_grad()
                if num_updates and self.steps >= num_updates:
                    return
            epochs -= 1
            if not num_updates and epochs <= 0:
                return

    def metrics(self) -> dict[str, float]:
        return {DP_STEPS: float(self.steps), DP_SAMPLE_RATE: self.sample_rate}
