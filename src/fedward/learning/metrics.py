"""Validation metrics in plain numpy, so the node worker needs no sklearn to score a model.

Classification metrics compare labels. With two classes, ``f1``/``precision``/``recall``
score the *positive* class: ``1`` for labels in ``{-1, 0, 1}``, otherwise the larger
label once sorted (``"malignant"`` of ``{"benign", "malignant"}``) — the class sklearn's
``decision_function`` scores. With more classes they are macro averages. The
``*_macro`` names always average over the classes present in ``y_true`` or ``y_pred``.

``roc_auc`` ranks scores (Mann-Whitney U with tied ranks averaged); for more than two
classes it takes one score column per sorted class and averages one-vs-rest AUCs.

Regression metrics average over every output (uniform weights for multi-output).

A metric that is undefined on the data (ROC AUC with one class in ``y_true``) raises
:class:`UndefinedMetricError` from its function and is left out by :func:`compute_metrics`,
so metric dictionaries stay JSON-clean (no NaN).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from fedward.errors import UndefinedMetricError, ValidationError

Array = np.ndarray


def _labels(y_true: Array, y_pred: Array) -> tuple[Array, Array, Array]:
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValidationError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    if y_true.size == 0:
        raise UndefinedMetricError("no sample to score")
    return y_true, y_pred, np.union1d(y_true, y_pred)


def accuracy(y_true: Array, y_pred: Array) -> float:
    y_true, y_pred, _ = _labels(y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def _per_class_counts(y_true: Array, y_pred: Array, classes: Array) -> tuple[Array, Array, Array]:
    true_pos = np.array([np.sum((y_true == c) & (y_pred == c)) for c in classes], dtype=float)
    predicted = np.array([np.sum(y_pred == c) for c in classes], dtype=float)
    actual = np.array([np.sum(y_true == c) for c in classes], dtype=float)
    return true_pos, predicted, actual


def _safe_ratio(num: Array, den: Array) -> Array:
    # sklearn's zero_division=0: a class never predicted (or never present) scores 0.
    out = np.zeros_like(num, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _scores(y_true: Array, y_pred: Array, average: str) -> tuple[Array, Array, Array]:
    y_true, y_pred, classes = _labels(y_true, y_pred)
    if average == "binary":
        if classes.size > 2:
            raise ValidationError(
                f"binary average needs at most 2 classes, got {classes.size}",
                hint="use the macro average",
            )
        classes = np.array([_positive_label(classes)])
    elif average != "macro":
        raise ValidationError(f"unknown average {average!r}; use 'binary' or 'macro'")
    true_pos, predicted, actual = _per_class_counts(y_true, y_pred, classes)
    precision_ = _safe_ratio(true_pos, predicted)
    recall_ = _safe_ratio(true_pos, actual)
    f1_ = _safe_ratio(2 * true_pos, predicted + actual)
    return precision_, recall_, f1_


def _positive_label(classes: Array) -> object:
    # {0, 1} and {-1, 1} keep 1 positive even when only the negative class shows up.
    if classes.dtype.kind in "biuf" and set(classes.tolist()) <= {-1, 0, 1}:
        return 1
    return classes[-1]


def _auto_average(y_true: Array, y_pred: Array) -> str:
    return "binary" if np.union1d(np.ravel(y_true), np.ravel(y_pred)).size <= 2 else "macro"


def precision(y_true: Array, y_pred: Array, average: str | None = None) -> float:
    return float(np.mean(_scores(y_true, y_pred, average or _auto_average(y_true, y_pred))[0]))


def recall(y_true: Array, y_pred: Array, average: str | None = None) -> float:
    return float(np.mean(_scores(y_true, y_pred, average or _auto_average(y_true, y_pred))[1]))


def f1(y_true: Array, y_pred: Array, average: str | None = None) -> float:
    return float(np.mean(_scores(y_true, y_pred, average or _auto_average(y_true, y_pred))[2]))


def _binary_auc(positive: Array, scores: Array) -> float:
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise UndefinedMetricError("ROC AUC needs both classes in y_true")
    ranks = _average_ranks(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: Array) -> Array:
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    # Positions where a run of equal values starts; every member of a run gets its mean rank.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], sorted_values.size]
    mean_rank = (starts + ends + 1) / 2.0  # ranks are 1-based
    ranks = np.empty(values.size, dtype=float)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def roc_auc(y_true: Array, y_score: Array) -> float:
    """Binary: ``y_score`` of the positive (larger) class, 1-D or the last of 2 columns.

    Multi-class: one column per sorted class; the macro one-vs-rest average.
    """
    y_true = np.asarray(y_true).ravel()
    scores = np.asarray(y_score, dtype=float)
    if scores.ndim == 2 and scores.shape[1] == 1:
        scores = scores[:, 0]
    if scores.shape[0] != y_true.size:
        raise ValidationError(f"y_true has {y_true.size} labels but y_score has {scores.shape[0]}")
    classes = np.unique(y_true)
    if scores.ndim == 1:
        if classes.size > 2:
            raise ValidationError("multi-class ROC AUC needs one score column per class")
        if classes.size < 2:
            raise UndefinedMetricError("ROC AUC needs both classes in y_true")
        return _binary_auc(y_true == classes[-1], scores)
    if scores.shape[1] == 2 and classes.size <= 2:
        if classes.size < 2:
            raise UndefinedMetricError("ROC AUC needs both classes in y_true")
        return _binary_auc(y_true == classes[-1], scores[:, 1])
    if scores.shape[1] != classes.size:
        raise UndefinedMetricError(
            f"y_score has {scores.shape[1]} columns but y_true holds {classes.size} classes"
        )
    return float(np.mean([_binary_auc(y_true == c, scores[:, i]) for i, c in enumerate(classes)]))


def _regression(y_true: Array, y_pred: Array) -> tuple[Array, Array]:
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.ndim == 1 and y_pred.ndim == 2 and y_pred.shape[1] == 1:
        y_pred = y_pred[:, 0]
    if y_true.shape != y_pred.shape:
        raise ValidationError(f"y_true shape {y_true.shape} differs from y_pred {y_pred.shape}")
    if y_true.size == 0:
        raise UndefinedMetricError("no sample to score")
    return y_true, y_pred


def mse(y_true: Array, y_pred: Array) -> float:
    y_true, y_pred = _regression(y_true, y_pred)
    return float(np.mean((y_true - y_pred) ** 2))


def mae(y_true: Array, y_pred: Array) -> float:
    y_true, y_pred = _regression(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def explained_variance(y_true: Array, y_pred: Array) -> float:
    y_true, y_pred = _regression(y_true, y_pred)
    residual_var = np.var(y_true - y_pred, axis=0)
    total_var = np.var(y_true, axis=0)
    # sklearn's force_finite: constant targets score 1 when predicted exactly, else 0.
    score = np.where(total_var > 0, 1 - residual_var / np.where(total_var > 0, total_var, 1), 0.0)
    score = np.where((total_var == 0) & (residual_var == 0), 1.0, score)
    return float(np.mean(score))


_LABEL_METRICS: dict[str, Callable[[Array, Array], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "precision": precision,
    "recall": recall,
    "f1_macro": lambda t, p: f1(t, p, "macro"),
    "precision_macro": lambda t, p: precision(t, p, "macro"),
    "recall_macro": lambda t, p: recall(t, p, "macro"),
    "mse": mse,
    "mae": mae,
    "explained_variance": explained_variance,
}
SCORE_METRICS = frozenset({"roc_auc"})
METRIC_NAMES = frozenset(_LABEL_METRICS) | SCORE_METRICS


def compute_metrics(
    names: Iterable[str], y_true: Array, y_pred: Array, y_score: Array | None = None
) -> dict[str, float]:
    """``{name: value}`` for each known name; undefined metrics are left out.

    ``roc_auc`` needs ``y_score`` (it is skipped without it). Unknown names raise.
    """
    names = list(names)
    unknown = sorted(set(names) - METRIC_NAMES)
    if unknown:
        raise ValidationError(
            f"unknown metric(s) {', '.join(unknown)}",
            hint="choose among " + ", ".join(sorted(METRIC_NAMES)),
        )
    results: dict[str, float] = {}
    for name in names:
        try:
            if name in SCORE_METRICS:
                if y_score is not None:
                    results[name] = roc_auc(y_true, y_score)
            else:
                results[name] = _LABEL_METRICS[name](y_true, y_pred)
        except UndefinedMetricError:
            continue
    return results
