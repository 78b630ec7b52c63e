"""``SklearnTrainingPlan``: federated linear models trained with ``partial_fit``.

Works with sklearn's SGD family (``SGDClassifier``, ``SGDRegressor``, ``Perceptron``) on
``csv`` datasets. A subclass names the estimator and its default arguments; the plan
handles everything else.

``model_args``
    ``n_features`` (int, required), ``classes`` (list, classifiers), ``estimator``
    (keyword arguments of the estimator, over the subclass defaults), ``target_column``
    (name or index; default the last column), ``standardize`` (see ``feature_scaling``:
    ``"pooled"`` by default).

Metrics
    ``train_loss`` (the mean of the round's batch losses), ``global_<metric>`` (the
    received model on the node's held-out share) and ``local_<metric>`` (after training).

Parameters
    ``coef`` and ``intercept`` as sklearn shapes them (classifiers ``(k, n_features)``
    and ``(k,)`` with ``k = 1`` for two classes; regressors ``(n_features,)`` and
    ``(1,)``), float64, zeros at ``init_params``; plus the feature moments in pooled mode.

``training_args`` (``training_args.TrainingArgs``)
    ``optimizer_args={"lr": ...}`` (the learning rate: sklearn's ``eta0``, the same name
    as the torch plans'; each plan has its default), ``epochs`` or ``num_updates``,
    ``batch_size``, ``batch_maxnum``, ``log_interval``, ``test_ratio``,
    ``test_on_global_updates``, ``test_on_local_updates``, ``test_metrics`` (default
    accuracy, f1, roc_auc / mse, mae), ``seed``.

Any other model argument, training argument or optimizer argument is refused with the
closest valid name; an estimator parameter given as a model argument is pointed to
``estimator``.

sklearn's learning-rate schedules restart at every round (``t_`` is per estimator); the
shipped plans pick schedules that behave well under that.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from fedward.core.params import Params
from fedward.errors import DatasetError, PlanError
from fedward.learning.datasets.csv_table import load_csv_xy
from fedward.learning.datasets.dataset_type import dataset_paths_hidden
from fedward.learning.feature_scaling import FeatureScaling
from fedward.learning.linear_losses import classification_loss, regression_loss
from fedward.learning.metrics import compute_metrics
from fedward.learning.plan import (
    SCAFFOLD_NODE_CONTROL,
    SCAFFOLD_SERVER_CONTROL,
    DatasetView,
    Progress,
    TrainingPlan,
    TrainOutcome,
)
from fedward.learning.training_args import TrainingArgs, held_out_split, round_rng

CLASSIFIER_METRICS = ("accuracy", "f1", "roc_auc")
REGRESSOR_METRICS = ("mse", "mae")
# Estimator options whose state would not travel with coef/intercept, or that partial_fit ignores.
_REFUSED_ESTIMATOR_ARGS = frozenset({"average", "early_stopping", "warm_start"})
_LEARNING_RATE_HINT = "the learning rate is the training argument optimizer_args={'lr': ...}"


class SklearnTrainingPlan(TrainingPlan):
    framework = "sklearn"
    #: The sklearn estimator class; it must offer ``partial_fit``.
    estimator_class: ClassVar[type[Any]]
    #: Estimator keyword arguments used unless ``model_args["estimator"]`` overrides them.
    default_estimator_args: ClassVar[Mapping[str, Any]] = {}
    model_arg_names = frozenset(
        {"n_features", "classes", "estimator", "target_column", "standardize", "feature_scale"}
    )
    optimizer_arg_names = frozenset({"lr"})

    @classmethod
    def model_arg_hint(cls, name: str) -> str | None:
        if name == "eta0":
            return _LEARNING_RATE_HINT
        if name == "n_classes":
            return "give the labels themselves: classes=[0, 1, ...]"
        try:
            estimator_params = cls.estimator_class().get_params()
        except (AttributeError, TypeError):
            return None
        if name in estimator_params:
            estimator = cls.estimator_class.__name__
            return f"{name} is a parameter of {estimator}: estimator={{{name!r}: ...}}"
        return None

    # --- model description -----------------------------------------------------------

    @cached_property
    def n_features(self) -> int:
        value = self.model_args.get("n_features")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PlanError("model_args n_features must be a positive integer")
        return value

    @cached_property
    def is_classifier(self) -> bool:
        from sklearn.base import is_classifier  # imported here: researchers may lack sklearn

        return bool(is_classifier(self.new_estimator()))

    @cached_property
    def classes(self) -> np.ndarray:
        classes = self.model_args.get("classes")
        if not self.is_classifier:
            return np.array([])
        if not isinstance(classes, list | tuple) or len(set(classes)) < 2:
            raise PlanError("model_args classes must list at least two distinct labels")
        return np.unique(np.asarray(classes))  # sklearn's classes_ order

    @cached_property
    def scaling(self) -> FeatureScaling:
        return FeatureScaling.from_model_args(self.model_args, self.n_features)

    def estimator_args(self) -> dict[str, Any]:
        overrides = self.model_args.get("estimator") or {}
        if not isinstance(overrides, Mapping):
            raise PlanError("model_args estimator must be a mapping of estimator arguments")
        refused = sorted(set(overrides) & _REFUSED_ESTIMATOR_ARGS)
        if refused:
            raise PlanError(f"estimator argument(s) {', '.join(refused)} are not supported here")
        if "eta0" in overrides:
            raise PlanError("estimator argument eta0 is not read here", hint=_LEARNING_RATE_HINT)
        return {**self.default_estimator_args, **overrides}

    def new_estimator(self, seed: int = 0, learning_rate: float | None = None) -> Any:
        """The estimator, with ``learning_rate`` (``optimizer_args["lr"]``) as its ``eta0``."""
        args = {**self.estimator_args(), "random_state": seed}
        if learning_rate is not None:
            args["eta0"] = learning_rate
        try:
            return self.estimator_class(**args)
        except TypeError as exc:
            raise PlanError(f"invalid estimator arguments: {exc}") from exc

    def _output_count(self) -> int:
        return 1 if len(self.classes) <= 2 else len(self.classes)

    # --- parameters ------------------------------------------------------------------

    def init_params(self, seed: int = 0) -> Params:
        coef: np.ndarray
        if self.is_classifier:
            outputs = self._output_count()
            coef = np.zeros((outputs, self.n_features), dtype=np.float64)
            intercept = np.zeros(outputs, dtype=np.float64)
        else:
            coef = np.zeros(self.n_features, dtype=np.float64)
            intercept = np.zeros(1, dtype=np.float64)
        return {"coef": coef, "intercept": intercept, **self.scaling.initial_params()}

    def _estimator_from(
        self, params: Mapping[str, np.ndarray], seed: int, learning_rate: float | None = None
    ) -> Any:
        expected = self.init_params()
        for name in ("coef", "intercept"):
            if name not in params or np.shape(params[name]) != expected[name].shape:
                raise PlanError(
                    f"parameter {name!r} does not fit this plan: expected shape "
                    f"{list(expected[name].shape)}"
                )
        estimator = self.new_estimator(seed, learning_rate)
        # Setting coef_/intercept_ before the first partial_fit makes sklearn start from
        # them instead of zeros; they must be C-contiguous float64 for its Cython loop.
        estimator.coef_ = np.array(params["coef"], dtype=np.float64, order="C")
        estimator.intercept_ = np.array(params["intercept"], dtype=np.float64, order="C")
        if self.is_classifier:
            estimator.classes_ = self.classes
        estimator.n_features_in_ = self.n_features
        return estimator

    # --- prediction and evaluation (researcher side too) -----------------------------

    def _scaled(
        self, params: Mapping[str, np.ndarray], features: np.ndarray, local: np.ndarray | None
    ) -> np.ndarray:
        center, scale = self.scaling.center_and_scale(params, local)
        return FeatureScaling.apply(np.asarray(features, dtype=np.float64), center, scale)

    def decision_function(self, params: Mapping[str, np.ndarray], features: np.ndarray) -> Any:
        scaled = self._scaled(params, features, None)
        return self._estimator_from(params, 0).decision_function(scaled)

    def predict(self, params: Mapping[str, np.ndarray], features: np.ndarray) -> np.ndarray:
        """Predictions of the model ``params`` for raw (unscaled) ``features``."""
        scaled = self._scaled(params, features, None)
        return np.asarray(self._estimator_from(params, 0).predict(scaled))

    def evaluate(
        self,
        params: Mapping[str, np.ndarray],
        features: np.ndarray,
        y: np.ndarray,
        metrics: list[str] | tuple[str, ...] | None = None,
    ) -> dict[str, float]:
        """Metrics of ``params`` on raw ``features`` and labels ``y``."""
        return self._metrics(params, np.asarray(features), np.asarray(y), metrics, None)

    def _metrics(
        self,
        params: Mapping[str, np.ndarray],
        features: np.ndarray,
        y: np.ndarray,
        metrics: list[str] | tuple[str, ...] | None,
        local: np.ndarray | None,
    ) -> dict[str, float]:
        names = metrics or (CLASSIFIER_METRICS if self.is_classifier else REGRESSOR_METRICS)
        estimator = self._estimator_from(params, 0)
        scaled = self._scaled(params, features, local)
        predicted = estimator.predict(scaled)
        scores = estimator.decision_function(scaled) if self.is_classifier else None
        return compute_metrics(names, y, predicted, scores)

    # --- training --------------------------------------------------------------------

    def _load(self, dataset: DatasetView) -> tuple[np.ndarray, np.ndarray]:
        with dataset_paths_hidden(dataset.path):
            features, y, _ = load_csv_xy(dataset.path, self.model_args.get("target_column"))
        if features.shape[1] != self.n_features:
            raise DatasetError(
                f"dataset {dataset.dataset_id} has {features.shape[1]} feature columns, "
                f"the plan expects n_features={self.n_features}"
            )
        missing = np.isnan(features).any(axis=0)
        if missing.any():
            raise DatasetError(
                f"dataset {dataset.dataset_id} has missing values in {int(missing.sum())} "
                "feature column(s); SGD models cannot train on them"
            )
        return features, self._checked_labels(y, dataset.dataset_id)

    def _checked_labels(self, y: np.ndarray, dataset_id: str) -> np.ndarray:
        if not self.is_classifier:
            if y.dtype.kind not in "iuf":
                raise DatasetError(f"dataset {dataset_id}: the target column is not numeric")
            return y.astype(np.float64)
        classes = self.classes
        if classes.dtype.kind in "iu" and y.dtype.kind == "f" and np.all(y == np.round(y)):
            y = y.astype(np.int64)
        elif classes.dtype.kind == "U" and y.dtype.kind != "U":
            y = y.astype(str)
        unexpected = int(np.sum(~np.isin(y, classes)))
        if unexpected:
            # Counted, never shown: a wrong target column could hold identifying values.
            raise DatasetError(
                f"dataset {dataset_id}: {unexpected} label(s) are not in model_args classes",
                hint="check target_column and classes",
            )
        return y

    def _batch_loss(self, estimator: Any, batch: np.ndarray, y: np.ndarray) -> float:
        epsilon = float(getattr(estimator, "epsilon", 0.1))
        if self.is_classifier:
            decision = estimator.decision_function(batch)
            return classification_loss(estimator.loss, decision, y, self.classes, epsilon)
        return regression_loss(estimator.loss, estimator.predict(batch), y, epsilon)

    def train(
        self,
        params: Params,
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        default_metrics = CLASSIFIER_METRICS if self.is_classifier else REGRESSOR_METRICS
        args = TrainingArgs.from_mapping(training_args, default_metrics)
        if args.fedprox_mu:
            raise PlanError("sklearn SGD plans do not support FedProx (fedprox_mu)")
        if {SCAFFOLD_SERVER_CONTROL, SCAFFOLD_NODE_CONTROL} & set(self.received_extras):
            # partial_fit owns its update loop: no gradient can be corrected between steps.
            raise PlanError(
                "SCAFFOLD needs a plan trained with plain SGD steps on torch; sklearn's "
                "partial_fit gives no hook to correct each step's gradient",
                hint="use a torch plan, or another aggregator (fedavg, fedadam, ...)",
            )
        features, y = self._load(dataset)
        train_rows, test_rows = held_out_split(len(y), args.test_ratio, args.seed, self.node_id)
        if not len(train_rows):
            raise DatasetError(f"dataset {dataset.dataset_id} leaves no row to train on")
        x_train, y_train = features[train_rows], y[train_rows]
        x_test, y_test = features[test_rows], y[test_rows]
        progress.log("info", f"training on {len(train_rows)} rows, validating on {len(test_rows)}")
        metrics: dict[str, float] = {}
        if len(test_rows) and args.test_on_global_updates:
            found = self._metrics(params, x_test, y_test, args.test_metrics, x_train)
            metrics.update({f"global_{k}": v for k, v in found.items()})

        estimator = self._estimator_from(params, args.seed, _learning_rate(args))
        scaled = self._scaled(params, x_train, x_train)
        rng = round_rng(args.seed, self.node_id, self.round_index)
        losses: list[float] = []
        for step, batch_rows in enumerate(_batches(len(train_rows), args, rng), start=1):
            batch, batch_y = scaled[batch_rows], y_train[batch_rows]
            if self.is_classifier:
                estimator.partial_fit(batch, batch_y, classes=self.classes)
            else:
                estimator.partial_fit(batch, batch_y)
            losses.append(self._batch_loss(estimator, batch, batch_y))
            if step % args.log_interval == 0:
                progress.scalar("train_loss", losses[-1], step)
        if losses:
            metrics["train_loss"] = float(np.mean(losses))

        new_params: Params = {
            "coef": np.array(estimator.coef_, dtype=np.float64).reshape(params["coef"].shape),
            "intercept": np.array(estimator.intercept_, dtype=np.float64).reshape(
                params["intercept"].shape
            ),
        }
        # The scaling the weights were just trained under; pooled mode then adds this
        # node's moments for the next global statistics.
        trained_under = {k: v for k, v in params.items() if k not in new_params}
        new_params.update(trained_under)
        new_params.update(self.scaling.local_params(x_train))
        if len(test_rows) and args.test_on_local_updates:
            evaluated = {**new_params, **trained_under}
            found = self._metrics(evaluated, x_test, y_test, args.test_metrics, x_train)
            metrics.update({f"local_{k}": v for k, v in found.items()})
        return TrainOutcome(new_params, sample_count=len(train_rows), metrics=metrics)


def _learning_rate(args: TrainingArgs) -> float | None:
    """``optimizer_args["lr"]``, checked; None for the plan's default."""
    value = (args.optimizer_args or {}).get("lr")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise PlanError(f"optimizer_args lr must be a positive number, got {value!r}")
    return float(value)


def _batches(n_rows: int, args: TrainingArgs, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Row-index batches: shuffled epochs, or exactly ``num_updates`` batches."""
    done = 0
    while True:
        order = rng.permutation(n_rows)
        for index, start in enumerate(range(0, n_rows, args.batch_size)):
            if args.batch_maxnum and index >= args.batch_maxnum:
                break
            yield order[start : start + args.batch_size]
            done += 1
            if args.num_updates and done >= args.num_updates:
                return
        if not args.num_updates and done >= args.epochs * args.batches_per_epoch(n_rows):
            return
