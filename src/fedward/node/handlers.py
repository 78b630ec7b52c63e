"""One handler per request type. Each returns the reply to send, or raises a FedwardError.

Training lives in ``train_handler``; the others are here.

Handlers never see raw bytes (the daemon decoded and checked them) and never build
replies that contain paths, tracebacks or data.
"""

from __future__ import annotations

import hashlib
import logging
import threading
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
from fedward.core.plan_digest import normalise_source, plan_digest, plan_text
from fedward.errors import IntegrityError, PlanError, ValidationError
from fedward.node.gpu import DeviceProbe, cuda_device_count
from fedward.node.jobs.runner import JobRunner
from fedward.node.privacy_ledger import PrivacyLedger
from fedward.node.round_jobs import RoundJobs
from fedward.node.secure_aggregation import SecAggSessions
from fedward.node.services import NodeServices
from fedward.transport.blobs import BlobStore

log = logging.getLogger("fedward.node")

PLAN_CACHE_SIZE = 64
MAX_PLAN_BYTES = 1 << 20


@dataclass
class NodeContext:
    config: NodeConfig
    services: NodeServices
    blobs: BlobStore
    runner: JobRunner
    send_event: Callable[[str, ScalarEvent], None]
    privacy_ledger: PrivacyLedger
    device_probe: DeviceProbe = field(default=cuda_device_count)
    secure_aggregation: SecAggSessions = field(default_factory=SecAggSessions)
    # Plans by blob id. Blobs are content-addressed and readers are never removed, so a
    # plan fetched once stays valid: every round of an experiment reuses it.
    plan_cache: dict[str, FetchedPlan] = field(default_factory=dict)
    plan_cache_lock: threading.Lock = field(default_factory=threading.Lock)
    # Train jobs by (researcher, experiment, round): a repeated request re-attaches.
    round_jobs: RoundJobs = field(default_factory=RoundJobs)


def handle_ping(ctx: NodeContext, researcher_id: str, request: PingRequest) -> Reply:
    return PongReply(request_id=request.request_id, version=__version__)


def handle_list(ctx: NodeContext, researcher_id: str, request: ListRequest) -> Reply:
    datasets = [record.summary() for record in ctx.services.datasets.list()]
    return DatasetsReply(request_id=request.request_id, datasets=datasets)


def handle_search(ctx: NodeContext, researcher_id: str, request: SearchRequest) -> Reply:
    datasets = [record.summary() for record in ctx.services.datasets.search(request.tags)]
    return DatasetsReply(request_id=request.request_id, datasets=datasets)


@dataclass(frozen=True)
class FetchedPlan:
    """A plan as the node checked it: the text as sent, the canonical text the node runs
    and shows, and the node's own digest of the canonical text."""

    text: str
    canonical: str
    digest: str


def fetch_plan(ctx: NodeContext, plan_blob: str) -> FetchedPlan:
    """The plan of ``plan_blob``, downloaded with a size cap and checked (``plan_digest``)."""
    with ctx.plan_cache_lock:
        cached = ctx.plan_cache.get(plan_blob)
    if cached is not None:
        return cached
    try:
        data = ctx.blobs.get_bytes(plan_blob, max_bytes=MAX_PLAN_BYTES)
    except ValidationError as exc:
        raise PlanError(f"training plan refused: {exc.message}") from exc
    if hashlib.sha256(data).hexdigest() != plan_blob:
        raise IntegrityError("training plan does not match its blob id")
    text = plan_text(data)
    canonical = normalise_source(text)
    fetched = FetchedPlan(text, canonical, plan_digest(canonical, ctx.config.digest_algorithm))
    with ctx.plan_cache_lock:
        if len(ctx.plan_cache) >= PLAN_CACHE_SIZE:
            ctx.plan_cache.pop(next(iter(ctx.plan_cache)))  # oldest first
        ctx.plan_cache[plan_blob] = fetched
    return fetched


def handle_plan_status(ctx: NodeContext, researcher_id: str, request: PlanStatusRequest) -> Reply:
    digest = fetch_plan(ctx, request.plan_blob).digest
    status, notes = ctx.services.plans.status_of(digest)
    return PlanStatusReply(
        request_id=request.request_id,
        plan_digest=digest,
        status=status,
        approval_required=ctx.config.approval_required,
        notes=notes,
    )


def handle_approval(ctx: NodeContext, researcher_id: str, request: ApprovalRequest) -> Reply:
    plan = fetch_plan(ctx, request.plan_blob)
    record = ctx.services.plans.request(
        plan.text, request.plan_class, request.description, researcher_id
    )
    return PlanStatusReply(
        request_id=request.request_id,
        plan_digest=record.digest,
        status=record.status,
        approval_required=ctx.config.approval_required,
        notes=record.notes,
    )
