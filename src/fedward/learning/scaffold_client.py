"""SCAFFOLD's client step (Karimireddy et al., 2020, option II) for torch plans.

The researcher's ``Scaffold`` aggregator keeps the control variates, so nodes stay
stateless. A train request then carries, in ``TrainingPlan.received_extras``:

- ``SCAFFOLD_SERVER_CONTROL``: the server control ``c``;
- ``SCAFFOLD_NODE_CONTROL``: the server's record of this node's ``c_i`` (zeros at first);

both named like the model's floating-point parameters (no ``buffer:`` entries). Starting
from the global ``x``, the plan takes ``K`` plain SGD steps at learning rate ``lr`` on the
corrected gradient, ``y <- y - lr * (grad(y) + c - c_i)``, and returns

    ``SCAFFOLD_DELTA_CONTROL`` = ``(x - y_K) / (K * lr) - c``,

which is ``c_i_new - c_i`` with the paper's option II ``c_i_new = c_i - c + (x - y_K) /
(K * lr)``. Option II reads the mean corrected step back as a gradient estimate, which is
only true of plain SGD with one learning rate: momentum, Adam or per-layer rates would
make it wrong, so they are refused rather than silently approximated. Weight decay is
accepted: it is part of every node's local objective, hence of its gradient.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from fedward.core.params import Params
from fedward.errors import PlanError
from fedward.learning.plan import SCAFFOLD_NODE_CONTROL, SCAFFOLD_SERVER_CONTROL

if TYPE_CHECKING:
    import torch

#: What ``optimizer_args`` may hold under SCAFFOLD; anything else asks for another optimizer.
PLAIN_SGD_ARGS = frozenset({"lr", "weight_decay"})


def scaffold_requested(extras: Mapping[str, Params]) -> bool:
    """True when the request carries SCAFFOLD's two controls; PlanError when only one."""
    present = [name for name in (SCAFFOLD_SERVER_CONTROL, SCAFFOLD_NODE_CONTROL) if name in extras]
    if len(present) == 1:
        missing = (
            SCAFFOLD_NODE_CONTROL
            if present[0] == SCAFFOLD_SERVER_CONTROL
            else SCAFFOLD_SERVER_CONTROL
        )
        raise PlanError(
            f"the train request carries {present[0]!r} but not {missing!r}; "
            "SCAFFOLD needs both control variates",
            hint="the researcher's aggregator must send both, as fedward's Scaffold does",
        )
    return len(present) == 2


def plain_sgd(
    model: torch.nn.Module, optimizer_args: Mapping[str, Any]
) -> tuple[torch.optim.SGD, float]:
    """Plain SGD over ``model``'s parameters and its learning rate, from ``optimizer_args``."""
    import torch  # only reached from a torch plan, which has imported it already

    asked = sorted(set(optimizer_args) - PLAIN_SGD_ARGS)
    if asked:
        raise PlanError(
            f"SCAFFOLD trains with plain SGD, but optimizer_args also set {', '.join(asked)}: "
            "its control update reads the local progress divided by (steps x lr) as the "
            "mean gradient, which momentum or adaptive optimizers would falsify",
            hint="give optimizer_args only lr (and optionally weight_decay)",
        )
    lr = _positive_number(optimizer_args.get("lr"), "lr")
    if lr is None:
        raise PlanError(
            "SCAFFOLD trains with plain SGD and needs its learning rate",
            hint='set training_args optimizer_args = {"lr": 0.01} (a value that suits the model)',
        )
    weight_decay = _positive_number(optimizer_args.get("weight_decay", 0.0), "weight_decay") or 0.0
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay)
    return optimizer, lr


def _positive_number(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PlanError(f"optimizer_args {name} must be a finite number, got {value!r}")
    if value < 0 or (name == "lr" and value == 0):
        raise PlanError(f"optimizer_args {name} must be positive, got {value!r}")
    return float(value)


class ScaffoldClientStep:
    """Gradient correction and control update of one node's round.

    Create it once the global parameters are in ``model`` (it checks the controls against
    the model), call ``start`` just before the first step, ``correct_gradients`` after each
    ``backward`` and before ``optimizer.step``, and ``delta_control`` at the end.
    """

    def __init__(self, model: torch.nn.Module, extras: Mapping[str, Params]) -> None:
        import torch  # only reached from a torch plan, which has imported it already

        self._params = {name: p for name, p in model.named_parameters() if p.is_floating_point()}
        server = _controls(extras[SCAFFOLD_SERVER_CONTROL], self._params, "server control c")
        node = _controls(extras[SCAFFOLD_NODE_CONTROL], self._params, "node control c_i")
        self._server_control = server
        # c - c_i in float64, then once in the parameter's dtype on its device.
        self._corrections: list[tuple[torch.nn.Parameter, torch.Tensor]] = [
            (
                p,
                torch.from_numpy(server[name] - node[name]).to(device=p.device, dtype=p.dtype),
            )
            for name, p in self._params.items()
            if p.requires_grad
        ]
        self._start: Params = {}

    def start(self) -> None:
        """Remember ``x``, the parameters the local steps start from."""
        self._start = _snapshot(self._params)

    def correct_gradients(self) -> None:
        """Add ``c - c_i`` to every trainable gradient (to zero when a parameter had none)."""
        for param, correction in self._corrections:
            if param.grad is None:
                param.grad = correction.clone()
            else:
                param.grad.add_(correction)

    def delta_control(self, steps: int, lr: float) -> Params:
        """``(x - y_K) / (K * lr) - c`` per parameter, in the parameter's dtype."""
        if steps < 1:
            raise PlanError("SCAFFOLD needs at least one local step to update its control")
        if not self._start:
            raise PlanError("ScaffoldClientStep.start was not called before training")
        final = _snapshot(self._params)
        delta: Params = {}
        for name, x in self._start.items():
            progress = x.astype(np.float64) - final[name].astype(np.float64)
            value = progress / (steps * lr) - self._server_control[name]
            delta[name] = value.astype(x.dtype)
        return delta


def _controls(
    given: Mapping[str, np.ndarray], params: Mapping[str, torch.nn.Parameter], what: str
) -> dict[str, np.ndarray]:
    """``given`` as float64 arrays, after checking it names and shapes ``params`` exactly."""
    missing = sorted(set(params) - set(given))
    extra = sorted(set(given) - set(params))
    if missing or extra:
        raise PlanError(
            f"SCAFFOLD {what} does not fit the model's floating-point parameters: "
            f"missing {missing[:5]}, unexpected {extra[:5]}",
            hint="the controls must be named like the trained parameters, without buffers",
        )
    out: dict[str, np.ndarray] = {}
    for name, param in params.items():
        value = np.asarray(given[name])
        if value.shape != tuple(param.shape):
            raise PlanError(
                f"SCAFFOLD {what} {name!r} has shape {list(value.shape)}, "
                f"the parameter has {list(param.shape)}"
            )
        if value.dtype.kind not in "fiu":
            raise PlanError(f"SCAFFOLD {what} {name!r} is {value.dtype}, not a number")
        value = value.astype(np.float64)
        if not np.all(np.isfinite(value)):
            raise PlanError(f"SCAFFOLD {what} {name!r} holds NaN or infinite values")
        out[name] = value
    return out


def _snapshot(params: Mapping[str, torch.nn.Parameter]) -> Params:
    return {name: p.detach().cpu().numpy().copy() for name, p in params.items()}
