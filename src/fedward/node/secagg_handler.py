"""Secure aggregation on the node: hold the checked update, then one handler per step.

``hold_update`` runs at the end of a train request that asks for secure aggregation,
on the result the daemon checked (never on anything the worker claims). The three
handlers answer the researcher's later requests (``SecAggShareRequest``,
``SecAggMaskRequest``, ``SecAggUnmaskRequest``); ``fedward.privacy.secagg_participant``
says what each step may and may not do. A step that finds something forged or replayed
is refused and written to the audit log.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import numpy as np

from fedward.core.aggregation import Layout
from fedward.core.messages import (
    Reply,
    SecAggAdvert,
    SecAggMaskedReply,
    SecAggMaskRequest,
    SecAggReadyReply,
    SecAggShareRequest,
    SecAggSharesReply,
    SecAggUnmaskReply,
    SecAggUnmaskRequest,
    TrainRequest,
)
from fedward.errors import FederationError, IntegrityError, ValidationError
from fedward.node.handlers import NodeContext
from fedward.node.secure_aggregation import SecAggSession, SessionKey
from fedward.privacy.secagg_keys import SessionContext
from fedward.privacy.secagg_participant import Advert, SecAggParticipant
from fedward.privacy.update_vector import MASKED_TENSOR, encode_update, vector_size
from fedward.protocol.params_wire import load_params, save_params

log = logging.getLogger("fedward.node")

#: How long a node waits for the adverts of the nodes the researcher names.
ADVERT_WAIT_S = 30.0

T = TypeVar("T")


def _folder(ctx: NodeContext) -> Path:
    folder = ctx.secure_aggregation.folder
    if folder is None:
        raise FederationError("the node is not connected to the broker")
    return folder


def _context(researcher_id: str, request: TrainRequest) -> SessionContext:
    setup = request.secure_aggregation
    assert setup is not None
    cohort = tuple(sorted(set(setup.cohort)))
    if len(cohort) != len(setup.cohort):
        raise ValidationError("the secure-aggregation cohort names a node twice")
    return SessionContext(
        researcher_id,
        request.experiment_id,
        request.round_index,
        cohort,
        setup.threshold,
        setup.fraction_bits,
    )


def hold_update(
    ctx: NodeContext,
    researcher_id: str,
    request: TrainRequest,
    update_path: Path,
    layout: Layout,
    weight: int,
    metrics: Mapping[str, float],
    timings: Mapping[str, float],
) -> SecAggReadyReply:
    """Encode the checked update, keep it here, publish fresh keys; the reply says so."""
    context = _context(researcher_id, request)
    participant = SecAggParticipant(
        context, ctx.config.node_id, min_survivors=ctx.config.privacy.min_nodes_per_round
    )
    vector = encode_update(
        load_params(update_path), layout, weight, context.fraction_bits, len(context.cohort)
    )
    held = _folder(ctx) / f"{secrets.token_hex(16)}.npy"
    np.save(held, vector, allow_pickle=False)
    key: SessionKey = (researcher_id, request.experiment_id, request.round_index)
    ctx.secure_aggregation.open(key, SecAggSession(participant, held, vector_size(layout)))
    advert = participant.advert()
    ctx.secure_aggregation.publish(
        researcher_id,
        SecAggAdvert(
            experiment_id=request.experiment_id,
            round_index=request.round_index,
            cohort=list(context.cohort),
            threshold=context.threshold,
            fraction_bits=context.fraction_bits,
            channel_public=advert.channel_public,
            mask_public=advert.mask_public,
            self_mask_commitment=advert.self_mask_commitment,
        ),
    )
    return SecAggReadyReply(
        request_id=request.request_id,
        experiment_id=request.experiment_id,
        round_index=request.round_index,
        channel_public=advert.channel_public,
        mask_public=advert.mask_public,
        self_mask_commitment=advert.self_mask_commitment,
        metrics=dict(metrics),
        timings=dict(timings),
    )


def _audited(ctx: NodeContext, researcher_id: str, key: SessionKey, step: Callable[[], T]) -> T:
    try:
        return step()
    except IntegrityError as exc:
        ctx.services.audit.record(
            "secagg_refused",
            researcher_id,
            f"experiment {key[1]} round {key[2]}: {exc}",
            subject=key[1],
        )
        ctx.secure_aggregation.close(key)
        raise


def handle_share(ctx: NodeContext, researcher_id: str, request: SecAggShareRequest) -> Reply:
    key: SessionKey = (researcher_id, request.experiment_id, request.round_index)
    session = ctx.secure_aggregation.get(key)
    context = session.participant.context

    def share() -> dict[str, bytes]:
        published = ctx.secure_aggregation.adverts(key, request.members, ADVERT_WAIT_S)
        adverts: dict[str, Advert] = {}
        for node_id, advert in published.items():
            if (
                list(context.cohort) != advert.cohort
                or context.threshold != advert.threshold
                or context.fraction_bits != advert.fraction_bits
            ):
                # Every node must have been told the same round: a researcher who gave
                # one node a smaller threshold or cohort is caught here.
                raise IntegrityError(f"{node_id} was told another cohort or threshold")
            adverts[node_id] = Advert(
                node_id, advert.channel_public, advert.mask_public, advert.self_mask_commitment
            )
        return session.participant.seal_shares(adverts)

    sealed = _audited(ctx, researcher_id, key, share)
    return SecAggSharesReply(
        request_id=request.request_id,
        experiment_id=request.experiment_id,
        round_index=request.round_index,
        sealed=sealed,
    )


def handle_mask(ctx: NodeContext, researcher_id: str, request: SecAggMaskRequest) -> Reply:
    key: SessionKey = (researcher_id, request.experiment_id, request.round_index)
    session = ctx.secure_aggregation.get(key)
    _audited(ctx, researcher_id, key, lambda: session.participant.open_shares(request.sealed))
    vector = np.load(session.held, allow_pickle=False)
    if vector.dtype != np.uint64 or vector.shape != (session.vector_size,):
        raise IntegrityError("the held update was changed on disk")
    session.participant.mask(vector)
    out = _folder(ctx) / f"{secrets.token_hex(16)}.safetensors"
    try:
        save_params({MASKED_TENSOR: vector}, out)
        blob = ctx.blobs.put_file(out, readers=[researcher_id])
    finally:
        out.unlink(missing_ok=True)
    session.discard()  # the unmasked update is not needed any more
    return SecAggMaskedReply(
        request_id=request.request_id,
        experiment_id=request.experiment_id,
        round_index=request.round_index,
        masked_blob=blob,
    )


def handle_unmask(ctx: NodeContext, researcher_id: str, request: SecAggUnmaskRequest) -> Reply:
    key: SessionKey = (researcher_id, request.experiment_id, request.round_index)
    session = ctx.secure_aggregation.get(key)
    try:
        reveal = session.participant.reveal(request.survivors)
    except ValidationError as exc:
        ctx.services.audit.record(
            "secagg_refused",
            researcher_id,
            f"experiment {key[1]} round {key[2]}: unmasking refused: {exc}",
            subject=key[1],
        )
        raise
    finally:
        ctx.secure_aggregation.close(key)
    return SecAggUnmaskReply(
        request_id=request.request_id,
        experiment_id=request.experiment_id,
        round_index=request.round_index,
        self_mask_shares=reveal.self_mask_shares,
        mask_key_shares=reveal.mask_key_shares,
    )
