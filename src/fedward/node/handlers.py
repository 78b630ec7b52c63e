"""One handler per request type. Each returns the reply to send, or raises a FedwardError.

Training lives in ``train_handler``; the others are here.

Handlers never see raw bytes (the daemon decoded and checked them) and never build
replies that contain paths, tracebacks or data.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from fedward import __version__
from fedward.config.model import NodeConfig
from fedward.core.messages import (
    ApprovalRequest,
    DatasetsReply,
    ListRequest,
    PingRequest,
    PlanStatusReply,
    PlanStatusRequest,
    PongReply,
    Reply,
    ScalarEvent,
    SearchRequest,
)
from fedward.core.plan_digest import plan_digest
from fedward.errors import IntegrityError, PlanError
from fedward.node.gpu import DeviceProbe, cuda_device_count
from fedward.node.jobs.runner import JobRunner
from fedward.node.services import NodeServices
from fedward.transport.blobs import BlobStore

log = logging.getLogger("fedward.node")

MAX_PLAN_BYTES = 1 << 20


@dataclass
class NodeContext:
    config: NodeConfig
    services: NodeServices
    blobs: BlobStore
    runner: JobRunner
    send_event: Callable[[str, ScalarEvent], None]
    device_probe: DeviceProbe = field(default=cuda_device_count)


def handle_ping(ctx: NodeContext, researcher_id: str, request: PingRequest) -> Reply:
    return PongReply(request_id=request.request_id, version=__version__)


def handle_list(ctx: NodeContext, researcher_id: str, request: ListRequest) -> Reply:
    datasets = [record.summary() for record in ctx.services.datasets.list()]
    return DatasetsReply(request_id=request.request_id, datasets=datasets)


def handle_search(ctx: NodeContext, researcher_id: str, request: SearchRequest) -> Reply:
    datasets = [record.summary() for record in ctx.services.datasets.search(request.tags)]
    return DatasetsReply(request_id=request.request_id, datasets=datasets)


def fetch_plan(ctx: NodeContext, plan_blob: str) -> tuple[bytes, str]:
    """The plan's exact bytes and the node's own digest of them."""
    data = ctx.blobs.get_bytes(plan_blob)
    if len(data) > MAX_PLAN_BYTES:
        raise PlanError(f"training plan larger than {MAX_PLAN_BYTES} bytes")
    if hashlib.sha256(data).hexdigest() != plan_blob:
        raise IntegrityError("training plan does not match its blob id")
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError("training plan is not UTF-8 text") from exc
    return data, plan_digest(source, ctx.config.digest_algorithm)


def handle_plan_status(ctx: NodeContext, researcher_id: str, request: PlanStatusRequest) -> Reply:
    _, digest = fetch_plan(ctx, request.plan_blob)
    status, notes = ctx.services.plans.status_of(digest)
    return PlanStatusReply(
        request_id=request.request_id,
        plan_digest=digest,
        status=status,
        approval_required=ctx.config.approval_required,
        notes=notes,
    )


def handle_approval(ctx: NodeContext, researcher_id: str, request: ApprovalRequest) -> Reply:
    data, _ = fetch_plan(ctx, request.plan_blob)
    record = ctx.services.plans.request(
        data.decode("utf-8"), request.plan_class, request.description, researcher_id
    )
    return PlanStatusReply(
        request_id=request.request_id,
        plan_digest=record.digest,
        status=record.status,
        approval_required=ctx.config.approval_required,
        notes=record.notes,
    )
