"""Feature standardisation that keeps one meaning for the global model.

A linear model (or an MLP) trained on standardised features is only meaningful with the
scaling it was trained with. If every node used its own statistics, the averaged model
would mix as many input scales as there are hospitals, and the researcher could not
apply it to new data. ``model_args["standardize"]`` therefore picks one of:

``"pooled"`` (default)
    Each node sends the first and second moments of its training features as the
    parameters ``buffer:feature_mean`` and ``buffer:feature_sq_mean``. Their FedAvg
    (weighted by sample count) is *exactly* the pooled mean and pooled E[x^2] of all the
    nodes' training rows, so from round 1 on every node, and the researcher's
    ``predict``, standardise with the same federation-wide statistics; only means
    travel, never rows. In round 0 the moments are still zero, so each node uses its
    local ones, which is what federated setups with similar sites commonly do anyway.
``"fixed"``
    ``model_args["feature_scale"] = {"mean": [...], "std": [...]}``, known in advance.
``"none"``
    Raw features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fedward.core.params import Params
from fedward.errors import PlanError
from fedward.learning.plan import BUFFER_PREFIX

FEATURE_MEAN = f"{BUFFER_PREFIX}feature_mean"
FEATURE_SQ_MEAN = f"{BUFFER_PREFIX}feature_sq_mean"
MODES = ("pooled", "fixed", "none")
_MIN_STD = 1e-12


@dataclass(frozen=True)
class FeatureScaling:
    mode: str
    n_features: int
    fixed_mean: np.ndarray | None = None
    fixed_std: np.ndarray | None = None

    @classmethod
    def from_model_args(cls, model_args: Mapping[str, Any], n_features: int) -> FeatureScaling:
        mode = model_args.get("standardize", "pooled")
        if mode is True:
            mode = "pooled"
        elif mode is False or mode is None:
            mode = "none"
        if mode not in MODES:
            raise PlanError(
                f"model_args standardize={mode!r} is not supported",
                hint="use 'pooled', 'fixed' (with feature_scale) or 'none'",
            )
        if mode != "fixed":
            return cls(mode, n_features)
        scale = model_args.get("feature_scale")
        if not isinstance(scale, Mapping) or not {"mean", "std"} <= set(scale):
            raise PlanError("standardize='fixed' needs model_args feature_scale={mean, std}")
        mean = np.asarray(scale["mean"], dtype=np.float64)
        std = np.asarray(scale["std"], dtype=np.float64)
        if mean.shape != (n_features,) or std.shape != (n_features,):
            raise PlanError(f"feature_scale mean and std need {n_features} values each")
        return cls(mode, n_features, mean, np.where(std > _MIN_STD, std, 1.0))

    def initial_params(self) -> Params:
        if self.mode != "pooled":
            return {}
        return {
            FEATURE_MEAN: np.zeros(self.n_features, dtype=np.float64),
            FEATURE_SQ_MEAN: np.zeros(self.n_features, dtype=np.float64),
        }

    def local_params(self, features: np.ndarray) -> Params:
        """What this node contributes: the moments of its training rows (pooled mode)."""
        if self.mode != "pooled":
            return {}
        return {
            FEATURE_MEAN: features.mean(axis=0).astype(np.float64),
            FEATURE_SQ_MEAN: (features**2).mean(axis=0).astype(np.float64),
        }

    def center_and_scale(
        self, params: Mapping[str, np.ndarray], local_features: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The (center, scale) to use with ``params``; local moments until pooled ones exist."""
        if self.mode == "none":
            return np.zeros(self.n_features), np.ones(self.n_features)
        if self.mode == "fixed":
            if self.fixed_mean is None or self.fixed_std is None:
                raise PlanError("fixed feature scaling was built without mean and std")
            return self.fixed_mean, self.fixed_std
        mean = np.asarray(params.get(FEATURE_MEAN, np.zeros(self.n_features)), dtype=np.float64)
        sq_mean = np.asarray(
            params.get(FEATURE_SQ_MEAN, np.zeros(self.n_features)), dtype=np.float64
        )
        if not np.any(sq_mean) and local_features is not None and len(local_features):
            mean = local_features.mean(axis=0)
            sq_mean = (local_features**2).mean(axis=0)
        std = np.sqrt(np.maximum(sq_mean - mean**2, 0.0))
        return mean, np.where(std > _MIN_STD, std, 1.0)

    @staticmethod
    def apply(features: np.ndarray, center: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return (features - center) / scale
