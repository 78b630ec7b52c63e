"""The node's privacy floor (``[privacy]``), enforced on every train request.

``check_request`` runs before anything trains: each rule of ``PrivacyPolicy`` the
request does not meet refuses it with a ``PrivacyPolicyViolation`` naming the setting,
written to the audit log. ``protect_update`` runs on the checked result, in the daemon:
under central DP it clips the update's change and adds this node's share of the noise
(``fedward.privacy.noise``; data statistics, the plan's ``buffer:`` tensors, keep their
global value), and writes the spend to the ledger before the update leaves the node.

Only what the daemon does itself counts towards the policy: local DP-SGD runs inside
the job worker, next to the plan's code, so the node cannot vouch for it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fedward.config.model import PrivacyPolicy
from fedward.core.messages import TrainRequest
from fedward.errors import PrivacyPolicyViolation
from fedward.learning.plan import is_buffer
from fedward.node.handlers import NodeContext
from fedward.privacy.accounting import PrivacyEvent, epsilon
from fedward.privacy.noise import clip_and_noise, node_noise_multiplier, noise_share
from fedward.protocol.params_wire import load_params, save_params

log = logging.getLogger("fedward.node")


def round_event(request: TrainRequest) -> PrivacyEvent | None:
    """What one round of ``request`` costs this node, if it runs under central DP."""
    dp, secagg = request.differential_privacy, request.secure_aggregation
    if dp is None or dp.mode != "central":
        return None
    cohort = len(secagg.cohort) if secagg is not None else None
    threshold = secagg.threshold if secagg is not None else None
    return PrivacyEvent(node_noise_multiplier(dp.noise_multiplier, cohort, threshold))


def _violations(
    ctx: NodeContext, researcher_id: str, request: TrainRequest, dataset_id: str
) -> list[tuple[str, str]]:
    policy: PrivacyPolicy = ctx.config.privacy
    dp, secagg = request.differential_privacy, request.secure_aggregation
    central = dp if dp is not None and dp.mode == "central" else None
    found: list[tuple[str, str]] = []
    if policy.require_secure_aggregation and secagg is None:
        found.append(("require_secure_aggregation", "this node requires secure aggregation"))
    if policy.min_nodes_per_round > 1 and (
        secagg is None or len(secagg.cohort) < policy.min_nodes_per_round
    ):
        found.append(
            (
                "min_nodes_per_round",
                f"this node requires at least {policy.min_nodes_per_round} nodes per round, "
                "aggregated securely",
            )
        )
    if policy.min_noise_multiplier is not None and (
        central is None or central.noise_multiplier < policy.min_noise_multiplier
    ):
        asked = f"{central.noise_multiplier:g}" if central else "none"
        found.append(
            (
                "min_noise_multiplier",
                f"this node requires central DP with noise multiplier >= "
                f"{policy.min_noise_multiplier:g} (asked: {asked})",
            )
        )
    if policy.needs_accounting:
        event = round_event(request)
        ledger = ctx.privacy_ledger
        if event is None:
            found.append(
                (
                    "max_epsilon_per_experiment"
                    if policy.max_epsilon_per_experiment is not None
                    else "epsilon_budget",
                    "this node accounts epsilon, which needs central DP",
                )
            )
        else:
            limits = [
                (
                    "max_epsilon_per_experiment",
                    policy.max_epsilon_per_experiment,
                    ledger.events(researcher_id, dataset_id, request.experiment_id),
                    f"experiment {request.experiment_id}",
                ),
                (
                    "epsilon_budget",
                    policy.epsilon_budget,
                    ledger.events(researcher_id, dataset_id),
                    f"researcher {researcher_id} on dataset {dataset_id}",
                ),
            ]
            for rule, limit, spent, whose in limits:
                if limit is None:
                    continue
                after = epsilon([*spent, event], policy.delta)
                if after > limit:
                    found.append(
                        (
                            rule,
                            f"this round would take epsilon to {after:.3g} for {whose}, "
                            f"past this node's limit of {limit:g} (delta {policy.delta:g})",
                        )
                    )
    return found


def check_request(
    ctx: NodeContext, researcher_id: str, request: TrainRequest, dataset_id: str
) -> None:
    """Refuse (audited) a train request that does not meet the node's privacy policy."""
    found = _violations(ctx, researcher_id, request, dataset_id)
    if not found:
        return
    message = "; ".join(text for _, text in found)
    rules = ", ".join(rule for rule, _ in found)
    ctx.services.audit.record(
        "privacy_refused",
        researcher_id,
        f"experiment {request.experiment_id} round {request.round_index} dataset "
        f"{dataset_id}: [privacy] {rules}: {message}",
        subject=request.experiment_id,
    )
    raise PrivacyPolicyViolation(
        f"refused by this node's privacy policy ([privacy] {rules}): {message}",
        rule=found[0][0],
    )


def rewrites_update(request: TrainRequest) -> bool:
    """Whether ``protect_update`` rewrites the update (central DP), changing its hash."""
    dp = request.differential_privacy
    return dp is not None and dp.mode == "central"


def protect_update(
    ctx: NodeContext,
    researcher_id: str,
    request: TrainRequest,
    dataset_id: str,
    params_in: Path,
    update_path: Path,
    protected_path: Path,
    sample_count: int,
) -> int:
    """Apply central DP to the checked update, writing it to ``protected_path`` (the
    update itself is a sealed file); the update's aggregation weight.

    Under central DP every node weighs 1: the sensitivity bound is per node, and the
    sample count would tell the researcher how much data the node has."""
    dp, secagg = request.differential_privacy, request.secure_aggregation
    if dp is None or not rewrites_update(request):
        return sample_count
    cohort = len(secagg.cohort) if secagg is not None else None
    std = noise_share(dp.noise_multiplier, dp.clip_norm, cohort)
    trained = load_params(update_path)
    noised, norm = clip_and_noise(
        load_params(params_in),
        trained,
        dp.clip_norm,
        std,
        frozen=[name for name in trained if is_buffer(name)],
    )
    save_params(noised, protected_path)
    log.info(
        "experiment %s round %d: update norm %.3g clipped to %g, noise std %.3g",
        request.experiment_id,
        request.round_index,
        norm,
        dp.clip_norm,
        std,
    )
    event = round_event(request)
    assert event is not None
    ctx.privacy_ledger.record(
        researcher_id, dataset_id, request.experiment_id, request.round_index, event
    )
    return 1


def plan_training_args(request: TrainRequest) -> dict[str, object]:
    """The training arguments the plan gets: local DP's settings under a reserved name."""
    args = dict(request.training_args)
    args.pop("differential_privacy", None)  # only the node sets it, from the request's field
    dp = request.differential_privacy
    if dp is not None and dp.mode == "local":
        args["differential_privacy"] = {
            "clip_norm": dp.clip_norm,
            "noise_multiplier": dp.noise_multiplier,
            "delta": dp.delta,
        }
    return args
