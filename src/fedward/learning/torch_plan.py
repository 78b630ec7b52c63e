"""``TorchTrainingPlan``: PyTorch models trained locally, exchanged as named numpy arrays.

The researcher writes:

- ``init_model()`` -> ``torch.nn.Module``
- ``training_data(dataset)`` -> ``(inputs, targets)`` arrays/tensors, or a map-style
  ``torch.utils.data.Dataset`` of ``(input, target)`` pairs
- ``training_step(model, inputs, targets)`` -> the loss tensor of one batch
- optionally ``init_optimizer(model, optimizer_args)`` (default: Adam, ``lr`` 1e-3),
  ``testing_step(model, inputs, targets)`` -> ``(predictions, scores)`` (default: argmax
  and softmax for ``task = "classification"``, the output for ``"regression"``), and the
  hooks ``on_round_start`` / ``on_round_end``.

Parameters travel under their ``named_parameters`` names. Persistent buffers (BatchNorm
running mean/var and batch counters) travel on purpose as ``buffer:<name>``: they are
data statistics, so FedAvg weighted by sample count gives the pooled running mean (and a
within-node average of the running variance), and aggregators that step weights
(FedAdam, SCAFFOLD, FedProx) can recognise and leave them alone (see
``plan.BUFFER_PREFIX``). Non-persistent buffers are rebuilt by ``init_model``.

Training arguments (``training_args.TrainingArgs``): ``batch_size``, ``epochs`` or
``num_updates``, ``batch_maxnum``, ``optimizer_args``, ``log_interval``, ``fedprox_mu``
(adds ``mu/2 * ||w - w_global||^2`` to each batch loss), ``test_ratio``,
``test_on_global_updates``, ``test_on_local_updates``, ``test_metrics``, ``seed``.
Metrics: ``train_loss`` (the mean batch loss), ``global_``/``local_<metric>`` on the
held-out share. ``use_gpu`` is the researcher's wish; the node's GPU policy sets
``assigned_device``. torch is imported when a plan runs: the rest of fedward needs none. Local DP
(``differential_privacy``, set by the node): DP-SGD through Opacus (``learning.dp``).

SCAFFOLD: when ``received_extras`` holds the two control variates, the round runs
SCAFFOLD's client step (``scaffold_client``): plain SGD at ``optimizer_args["lr"]``
instead of ``init_optimizer`` (other optimizers are refused), gradients corrected by
``c - c_i``, and the control update returned in ``TrainOutcome.extras``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from fedward.core.params import Params
from fedward.errors import PlanError, ValidationError
from fedward.learning.datasets.dataset_type import dataset_paths_hidden
from fedward.learning.dp import PrivateTraining
from fedward.learning.metrics import compute_metrics
from fedward.learning.plan import (
    BUFFER_PREFIX,
    SCAFFOLD_DELTA_CONTROL,
    DatasetView,
    Progress,
    TrainingPlan,
    TrainOutcome,
)
from fedward.learning.scaffold_client import ScaffoldClientStep, plain_sgd, scaffold_requested
from fedward.learning.training_args import TrainingArgs, held_out_split, round_rng

if TYPE_CHECKING:
    import torch

CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc")
REGRESSION_METRICS = ("mse", "mae")


def _torch() -> Any:
    try:
        import torch  # imported here: only torch plans need it
    except ImportError as exc:
        raise PlanError("this plan needs PyTorch", hint="install fedward[torch]") from exc
    return torch


def model_params(model: torch.nn.Module) -> Params:
    """Parameters and persistent buffers of ``model`` as numpy arrays (on the CPU)."""
    params: Params = {
        name: value.detach().cpu().numpy().copy() for name, value in model.named_parameters()
    }
    persistent = model.state_dict(keep_vars=True)
    for name, buffer in model.named_buffers():
        if name in persistent:
            params[f"{BUFFER_PREFIX}{name}"] = buffer.detach().cpu().numpy().copy()
    return params


def load_model_params(model: torch.nn.Module, params: Mapping[str, np.ndarray]) -> None:
    """Copy ``params`` into ``model``; PlanError unless names and shapes match exactly."""
    torch = _torch()
    expected = model_params(model)
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise PlanError(
            f"parameters do not fit the model: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    state = {}
    for name, reference in expected.items():
        value = np.asarray(params[name])
        if value.shape != reference.shape:
            raise PlanError(
                f"parameter {name!r} has shape {list(value.shape)}, "
                f"the model needs {list(reference.shape)}"
            )
        state[name.removeprefix(BUFFER_PREFIX)] = torch.from_numpy(
            np.array(value, dtype=reference.dtype)
        )
    model.load_state_dict(state, strict=True)


class TorchTrainingPlan(TrainingPlan):
    framework = "torch"
    #: "classification" (integer class targets) or "regression"; picks default metrics
    #: and the default ``testing_step``.
    task: str = "classification"

    # --- what the researcher writes --------------------------------------------------

    @abstractmethod
    def init_model(self) -> torch.nn.Module:
        """A fresh model; its initial weights come from the seeded global RNG."""

    @abstractmethod
    def training_data(self, dataset: DatasetView) -> Any:
        """``(inputs, targets)`` or a torch Dataset of pairs, model-ready."""

    @abstractmethod
    def training_step(
        self, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """The loss of one batch (a scalar tensor with a gradient)."""

    def init_optimizer(
        self, model: torch.nn.Module, optimizer_args: Mapping[str, Any]
    ) -> torch.optim.Optimizer:
        args = {"lr": 1e-3, **optimizer_args}
        return _torch().optim.Adam(model.parameters(), **args)

    def testing_step(
        self, model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[Any, Any]:
        """(predictions, scores) of one batch; scores feed ROC AUC (None to skip it)."""
        outputs = model(inputs)
        if self.task == "regression":
            return outputs.reshape(targets.shape), None
        if outputs.ndim == 1 or outputs.shape[-1] == 1:
            logits = outputs.reshape(-1)
            return (logits > 0).long(), logits
        return outputs.argmax(dim=-1), outputs.softmax(dim=-1)

    def on_round_start(self, model: torch.nn.Module, train_data: Any) -> None:
        """After the global parameters are loaded, before any evaluation or training."""

    def on_round_end(self, model: torch.nn.Module, train_data: Any) -> None:
        """After training and local evaluation, just before the parameters are exported."""

    # --- parameters ------------------------------------------------------------------

    def init_params(self, seed: int = 0) -> Params:
        torch = _torch()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return model_params(self.init_model())

    # --- device ----------------------------------------------------------------------

    def torch_device(self) -> torch.device:
        torch = _torch()
        try:
            device = torch.device(self.device())
        except RuntimeError as exc:
            raise PlanError(f"unknown device {self.device()!r}") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise PlanError(f"device {self.device()} was assigned but CUDA is not available")
        return device

    # --- data ------------------------------------------------------------------------

    def _dataset(self, dataset: DatasetView) -> Any:
        torch = _torch()
        with dataset_paths_hidden(dataset.path):
            data = self.training_data(dataset)
        if isinstance(data, tuple) and len(data) == 2:
            inputs, targets = (_as_tensor(torch, part) for part in data)
            if len(inputs) != len(targets):
                raise PlanError(
                    f"training_data gave {len(inputs)} inputs but {len(targets)} targets"
                )
            return torch.utils.data.TensorDataset(inputs, targets)
        if isinstance(data, torch.utils.data.Dataset) and hasattr(data, "__len__"):
            return data
        raise PlanError(
            "training_data must return (inputs, targets) or a torch Dataset with a length"
        )

    def _loader(self, data: Any, batch_size: int, shuffle: bool, seed: int = 0) -> Any:
        torch = _torch()
        generator = torch.Generator().manual_seed(seed)
        return torch.utils.data.DataLoader(
            data, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=0
        )

    # --- evaluation ------------------------------------------------------------------

    def _default_metrics(self) -> tuple[str, ...]:
        return REGRESSION_METRICS if self.task == "regression" else CLASSIFICATION_METRICS

    def _evaluate_model(
        self, model: torch.nn.Module, data: Any, names: tuple[str, ...], batch_size: int
    ) -> dict[str, float]:
        torch = _torch()
        device = next(iter(model.parameters())).device
        truths, predictions, scores = [], [], []
        model.train(False)  # evaluation mode
        with torch.no_grad():
            for inputs, targets in self._loader(data, batch_size, shuffle=False):
                predicted, scored = self.testing_step(model, inputs.to(device), targets.to(device))
                truths.append(_numpy(targets))
                predictions.append(_numpy(predicted))
                if scored is not None:
                    scores.append(_numpy(scored))
        if not truths:
            return {}
        y_score = np.concatenate(scores) if len(scores) == len(truths) else None
        return compute_metrics(
            names or self._default_metrics(),
            np.concatenate(truths),
            np.concatenate(predictions),
            y_score,
        )

    def evaluate(
        self,
        params: Mapping[str, np.ndarray],
        inputs: Any,
        targets: Any,
        metrics: tuple[str, ...] | list[str] | None = None,
        batch_size: int = 256,
    ) -> dict[str, float]:
        """Metrics of ``params`` on model-ready ``inputs``/``targets`` (researcher side)."""
        torch = _torch()
        model = self.init_model()
        load_model_params(model, params)
        data = torch.utils.data.TensorDataset(_as_tensor(torch, inputs), _as_tensor(torch, targets))
        return self._evaluate_model(model, data, tuple(metrics or ()), batch_size)

    def evaluate_dataset(
        self,
        params: Mapping[str, np.ndarray],
        dataset: DatasetView,
        metrics: tuple[str, ...] | list[str] | None = None,
    ) -> dict[str, float]:
        """Metrics of ``params`` on a whole dataset read with ``training_data``."""
        model = self.init_model()
        load_model_params(model, params)
        return self._evaluate_model(model, self._dataset(dataset), tuple(metrics or ()), 256)

    def predict(self, params: Mapping[str, np.ndarray], inputs: Any) -> np.ndarray:
        """Predictions (as ``testing_step`` makes them) for model-ready ``inputs``."""
        torch = _torch()
        model = self.init_model()
        load_model_params(model, params)
        model.train(False)  # evaluation mode
        batch = _as_tensor(torch, inputs)
        with torch.no_grad():
            predicted, _ = self.testing_step(model, batch, torch.zeros(len(batch)))
        return _numpy(predicted)

    # --- training --------------------------------------------------------------------

    def train(
        self,
        params: Params,
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        torch = _torch()
        args = TrainingArgs.from_mapping(training_args, self._default_metrics())
        seed = int(round_rng(args.seed, self.node_id, self.round_index).integers(2**31))
        # Own RNG state for this round: dropout and init draws replay exactly on a rerun and
        # leave the worker's global RNG as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self._train(params, dataset, args, progress, seed)

    def _train(
        self,
        params: Params,
        dataset: DatasetView,
        args: TrainingArgs,
        progress: Progress,
        seed: int,
    ) -> TrainOutcome:
        torch = _torch()
        device = self.torch_device()
        model = self.init_model()
        load_model_params(model, params)
        model.to(device)
        # Checked before the data is read: a misfit control fails the round at once.
        scaffold = (
            ScaffoldClientStep(model, self.received_extras)
            if scaffold_requested(self.received_extras)
            else None
        )
        data = self._dataset(dataset)
        train_rows, test_rows = held_out_split(len(data), args.test_ratio, args.seed, self.node_id)
        if not len(train_rows):
            raise ValidationError(f"dataset {dataset.dataset_id} leaves no sample to train on")
        train_data = torch.utils.data.Subset(data, train_rows.tolist())
        test_data = torch.utils.data.Subset(data, test_rows.tolist())
        progress.log(
            "info",
            f"training on {len(train_rows)} samples ({device}), validating on {len(test_rows)}",
        )
        self.on_round_start(model, train_data)
        metrics: dict[str, float] = {}
        if len(test_rows) and args.test_on_global_updates:
            found = self._evaluate_model(model, test_data, args.test_metrics, args.batch_size)
            metrics.update({f"global_{k}": v for k, v in found.items()})

        optimizer, lr = self._optimizer(model, args, scaffold is not None)
        private = PrivateTraining.for_round(model, optimizer, train_data, args, seed, scaffold)
        trained, optimizer = (private.module, private.optimizer) if private else (model, optimizer)
        if scaffold:
            progress.log("info", f"SCAFFOLD client step: plain SGD at lr {lr}")
            scaffold.start()
        anchor = [p.detach().clone() for p in model.parameters()] if args.fedprox_mu else []
        model.train()
        steps = 0
        batches = (
            private.batches(args.epochs, args.num_updates, args.batch_maxnum)
            if private
            else self._batches(train_data, args, seed)
        )
        loss_sum = torch.zeros((), device=device)
        for step, (inputs, targets) in enumerate(batches, start=1):
            optimizer.zero_grad()
            loss = self.training_step(trained, inputs.to(device), targets.to(device))
            loss_sum += loss.detach()
            if anchor:
                proximal = sum(
                    ((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor, strict=True)
                )
                loss = loss + 0.5 * args.fedprox_mu * proximal
            if not torch.isfinite(loss):
                raise PlanError(
                    f"training loss became {loss.item()} at step {step}",
                    hint="lower the learning rate (optimizer_args lr)",
                )
            loss.backward()
            if scaffold:
                scaffold.correct_gradients()
            optimizer.step()
            steps = step
            if step % args.log_interval == 0:
                progress.scalar("train_loss", float(loss.item()), step)

        if private:
            metrics.update(private.metrics())
        if steps:
            metrics["train_loss"] = float(loss_sum.item()) / steps
        if len(test_rows) and args.test_on_local_updates:
            found = self._evaluate_model(model, test_data, args.test_metrics, args.batch_size)
            metrics.update({f"local_{k}": v for k, v in found.items()})
        extras: dict[str, Params] = {}
        if scaffold:
            extras[SCAFFOLD_DELTA_CONTROL] = scaffold.delta_control(steps, lr)
        self.on_round_end(model, train_data)
        return TrainOutcome(
            model_params(model), sample_count=len(train_rows), metrics=metrics, extras=extras
        )

    def _optimizer(
        self, model: torch.nn.Module, args: TrainingArgs, scaffold: bool
    ) -> tuple[torch.optim.Optimizer, float]:
        """The round's optimizer, and its learning rate where SCAFFOLD needs it (else 0)."""
        if scaffold:
            return plain_sgd(model, args.optimizer_args or {})
        return self.init_optimizer(model, args.optimizer_args or {}), 0.0

    def _batches(self, train_data: Any, args: TrainingArgs, seed: int) -> Iterator[Any]:
        done = 0
        for epoch in range(10**9):
            model_batches = self._loader(
                train_data, args.batch_size, shuffle=True, seed=seed + epoch
            )
            for index, batch in enumerate(model_batches):
                if args.batch_maxnum and index >= args.batch_maxnum:
                    break
                yield batch
                done += 1
                if args.num_updates and done >= args.num_updates:
                    return
            if not args.num_updates and epoch + 1 >= args.epochs:
                return


def _as_tensor(torch: Any, value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise PlanError(f"training data must be numeric, got dtype {array.dtype}")
    return torch.from_numpy(np.ascontiguousarray(array))


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)
