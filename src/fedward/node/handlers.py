"""One handler per request type. Each returns the reply to send, or raises a FedwardError.

Handlers never see raw bytes (the daemon decoded and checked them) and never build
replies that contain paths, tracebacks or data.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fedward import __version__
from fedward.config.model import NodeConfig
from fedward.core.ids import new_id
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
    TrainReply,
    TrainRequest,
)
from fedward.core.plan_digest import plan_digest
from fedward.errors import IntegrityError, JobError, PlanError, PlanNotApproved, ValidationError
from fedward.node.gpu import choose_device
from fedward.node.jobs import wire
from fedward.node.jobs.runner import JobRunner, WorkerKey
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


def handle_ping(ctx: NodeContext, researcher_id: str, request: PingRequest) -> Reply:
    return PongReply(request_id=request.request_id, version=__version__)


def handle_list(ctx: NodeContext, researcher_id: str, request: ListRequest) -> Reply:
    datasets = [record.summary() for record in ctx.services.datasets.list()]
    return DatasetsReply(request_id=request.request_id, datasets=datasets)


def handle_search(ctx: NodeContext, researcher_id: str, request: SearchRequest) -> Reply:
    datasets = [record.summary() for record in ctx.services.datasets.search(request.tags)]
    return DatasetsReply(request_id=request.request_id, datasets=datasets)


def _fetch_plan(ctx: NodeContext, plan_blob: str) -> tuple[bytes, str]:
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
    _, digest = _fetch_plan(ctx, request.plan_blob)
    status, notes = ctx.services.plans.status_of(digest)
    return PlanStatusReply(
        request_id=request.request_id,
        plan_digest=digest,
        status=status,
        approval_required=ctx.config.approval_required,
        notes=notes,
    )


def handle_approval(ctx: NodeContext, researcher_id: str, request: ApprovalRequest) -> Reply:
    data, _ = _fetch_plan(ctx, request.plan_blob)
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


def _check_approved(ctx: NodeContext, digest: str) -> None:
    status, notes = ctx.services.plans.status_of(digest)
    if status == "approved":
        return
    if not ctx.config.approval_required:
        log.warning("running a plan that is %s because approval is disabled", status)
        return
    message = f"training plan is {status} on this node"
    if status == "rejected" and notes:
        message += f": {notes}"
    elif status == "unknown":
        message += "; ask for approval first (Experiment.request_approval)"
    raise PlanNotApproved(message, status=status, notes=notes)


def handle_train(ctx: NodeContext, researcher_id: str, request: TrainRequest) -> Reply:
    dataset = ctx.services.datasets.checked(request.dataset_id)
    plan_bytes, digest = _fetch_plan(ctx, request.plan_blob)
    _check_approved(ctx, digest)
    experiment_dir = ctx.runner.job_dir(request.experiment_id)
    plan_sha = request.plan_blob
    plan_path = experiment_dir / f"plan-{plan_sha[:16]}.py"
    if not plan_path.exists() or hashlib.sha256(plan_path.read_bytes()).hexdigest() != plan_sha:
        plan_path.write_bytes(plan_bytes)
    job_id = new_id("job")
    params_in = experiment_dir / f"{job_id}-in.safetensors"
    params_out = experiment_dir / f"{job_id}-out.safetensors"
    ctx.blobs.get_file(request.params_blob, params_in)
    extras_in: dict[str, str] = {}
    for name, blob_id in request.extra_blobs.items():
        extras_in[name] = str(
            ctx.blobs.get_file(blob_id, experiment_dir / f"{job_id}-x-{name}.safetensors")
        )
    wants_gpu = bool(request.training_args.get("use_gpu", False))
    device = choose_device(ctx.config.gpu, wants_gpu)
    spec = wire.JobSpec(
        job_id=job_id,
        plan_path=str(plan_path),
        plan_sha256=plan_sha,
        plan_class=request.plan_class,
        model_args=request.model_args,
        training_args=request.training_args,
        dataset_id=dataset.dataset_id,
        data_type=dataset.data_type,
        dataset_path=str(dataset.path),
        dataset_metadata=dict(dataset.options),
        params_in=str(params_in),
        params_out=str(params_out),
        extras_in=extras_in,
        extras_out_dir=str(experiment_dir),
        device=device,
        cpu_seconds=ctx.config.jobs.cpu_s,
    )
    audit_id = ctx.services.jobs.start(
        request.experiment_id, request.round_index, researcher_id, dataset.dataset_id, digest
    )

    def forward(scalar: wire.ScalarOut) -> None:
        event = ScalarEvent(
            request_id=request.request_id,
            experiment_id=request.experiment_id,
            round_index=request.round_index,
            name=scalar.name[:200],
            value=scalar.value,
            step=max(0, scalar.step),
        )
        ctx.send_event(researcher_id, event)

    key = WorkerKey(request.experiment_id, plan_sha, dataset.dataset_id)
    try:
        result = ctx.runner.run(
            key,
            spec,
            readable=[dataset.path],
            deadline_s=request.deadline_s,
            on_scalar=forward,
            gpu=device != "cpu",
        )
        out_blob = ctx.blobs.put_file(params_out, readers=[researcher_id])
        extra_blobs = {
            name: ctx.blobs.put_file(Path(path), readers=[researcher_id])
            for name, path in result.extras_out.items()
        }
    except JobError as exc:
        ctx.services.jobs.finish(
            audit_id, "timeout" if exc.hint == "timeout" else "failed", message=str(exc)
        )
        raise
    except Exception:
        ctx.services.jobs.finish(audit_id, "failed", message="internal error")
        raise
    finally:
        for path in [params_in, params_out, *map(Path, extras_in.values())]:
            path.unlink(missing_ok=True)
    ctx.services.jobs.finish(audit_id, "succeeded", metrics=result.metrics)
    if result.sample_count <= 0:
        raise ValidationError("the training plan reported no training samples")
    return TrainReply(
        request_id=request.request_id,
        experiment_id=request.experiment_id,
        round_index=request.round_index,
        params_blob=out_blob,
        sample_count=result.sample_count,
        metrics=result.metrics,
        timings=result.timings,
        extra_blobs=extra_blobs,
    )
