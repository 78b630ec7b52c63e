"""Asking nodes about a training plan: request its approval, read its status.

A node keeps an approval request as Pending until its administrator approves or rejects
it (``fedward node plan approve|reject`` or the node GUI); the status then comes back
as ``approved``, ``pending``, ``rejected`` or ``unknown``, with the administrator's
notes. A node that cannot tell answers ``error: ...``; a silent one is ``no answer``.
"""

from __future__ import annotations

from collections.abc import Sequence

from fedward.core.messages import (
    ApprovalRequest,
    ErrorReply,
    Message,
    PlanStatusReply,
    PlanStatusRequest,
)
from fedward.researcher.federation import Federation


def request_approval(
    federation: Federation,
    nodes: Sequence[str],
    plan_blob: str,
    digest: str,
    plan_class: str,
    description: str,
    timeout_s: float,
) -> dict[str, str]:
    requests: dict[str, Message] = {
        node_id: ApprovalRequest(
            request_id=federation.new_request_id(),
            plan_blob=plan_blob,
            plan_digest=digest,
            plan_class=plan_class,
            description=description,
        )
        for node_id in nodes
    }
    return _statuses(federation, requests, timeout_s)


def plan_status(
    federation: Federation, nodes: Sequence[str], plan_blob: str, digest: str, timeout_s: float
) -> dict[str, str]:
    requests: dict[str, Message] = {
        node_id: PlanStatusRequest(
            request_id=federation.new_request_id(), plan_blob=plan_blob, plan_digest=digest
        )
        for node_id in nodes
    }
    return _statuses(federation, requests, timeout_s)


def _statuses(
    federation: Federation, requests: dict[str, Message], timeout_s: float
) -> dict[str, str]:
    statuses = dict.fromkeys(requests, "no answer")
    for answer in federation.ask(requests, timeout_s):
        reply = answer.reply
        if isinstance(reply, PlanStatusReply):
            statuses[answer.node_id] = reply.status
            if reply.notes:
                statuses[answer.node_id] += f" ({reply.notes})"
        elif isinstance(reply, ErrorReply):
            statuses[answer.node_id] = f"error: {reply.message}"
    return statuses
