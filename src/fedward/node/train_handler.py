"""``handle_train``: check a training request, run it in a job worker, reply.

Order matters: the dataset and the plan are checked before anything runs; the plan's
digest is computed by the node from the exact bytes it downloaded, with its own
algorithm, and those same bytes are what the worker runs (it checks their sha256 again
before loading them). Every job that starts is in the job log with its outcome; every
refused request is in the audit log.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

from fedward.core.ids import new_id
from fedward.core.messages import Reply, ScalarEvent, TrainReply, TrainRequest
from fedward.errors import FedwardError, JobError, PlanNotApproved, ValidationError
from fedward.node.gpu import choose_device
from fedward.node.handlers import NodeContext, fetch_plan
from fedward.node.jobs import wire
from fedward.node.jobs.failures import outcome_of
from fedward.node.jobs.runner import WorkerKey

log = logging.getLogger("fedward.node")

# The job is stopped a little before the researcher stops waiting, so that its error
# reply arrives while someone still listens.
_REPLY_MARGIN_S = 2.0
_MIN_JOB_S = 0.5


def check_approved(ctx: NodeContext, researcher_id: str, digest: str, what: str) -> None:
    """Refuse (``PlanNotApproved``, audited) a plan whose digest is not approved here."""
    status, notes = ctx.services.plans.status_of(digest)
    if status == "approved":
        return
    if not ctx.config.approval_required:
        log.warning("running a plan that is %s here: approval is disabled on this node", status)
        return
    message = f"training plan is {status} on this node"
    if status == "rejected" and notes:
        message += f": {notes}"
    elif status == "unknown":
        message += "; ask for approval first (Experiment.request_approval)"
    elif status == "pending":
        message += "; the node's administrator has not reviewed it yet"
    ctx.services.audit.record(
        "train_refused", researcher_id, f"plan {digest} is {status}; {what}", subject=digest
    )
    raise PlanNotApproved(message, status=status, notes=notes)


def job_deadline_s(request_deadline_s: float, elapsed_s: float) -> float:
    """Seconds the job may run: the request's deadline, less what is spent and a margin."""
    margin = min(_REPLY_MARGIN_S, 0.1 * request_deadline_s)
    return max(_MIN_JOB_S, request_deadline_s - margin - elapsed_s)


def handle_train(ctx: NodeContext, researcher_id: str, request: TrainRequest) -> Reply:
    received = time.monotonic()
    dataset = ctx.services.datasets.checked(request.dataset_id)
    plan_bytes, digest = fetch_plan(ctx, request.plan_blob)
    check_approved(
        ctx,
        researcher_id,
        digest,
        f"experiment {request.experiment_id} round {request.round_index} "
        f"dataset {dataset.dataset_id}",
    )
    experiment_dir = ctx.runner.job_dir(request.experiment_id)
    plan_path = experiment_dir / f"plan-{request.plan_blob[:16]}.py"
    if not plan_path.exists() or hashlib.sha256(plan_path.read_bytes()).hexdigest() != (
        request.plan_blob
    ):
        plan_path.write_bytes(plan_bytes)
    job_id = new_id("job")
    params_in = experiment_dir / f"{job_id}-in.safetensors"
    params_out = experiment_dir / f"{job_id}-out.safetensors"
    extras_in: dict[str, str] = {}
    extras_out: list[Path] = []
    device = choose_device(
        ctx.config.gpu, bool(request.training_args.get("use_gpu", False)), ctx.device_probe
    )
    audit_id = ctx.services.jobs.start(
        request.experiment_id, request.round_index, researcher_id, dataset.dataset_id, digest
    )
    try:
        ctx.blobs.get_file(request.params_blob, params_in)
        for name, blob_id in request.extra_blobs.items():
            extras_in[name] = str(
                ctx.blobs.get_file(blob_id, experiment_dir / f"{job_id}-x-{name}.safetensors")
            )
        spec = wire.JobSpec(
            job_id=job_id,
            plan_path=str(plan_path),
            plan_sha256=request.plan_blob,
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
        result = ctx.runner.run(
            WorkerKey(request.experiment_id, request.plan_blob, dataset.dataset_id),
            spec,
            readable=[dataset.path],
            deadline_s=job_deadline_s(request.deadline_s, time.monotonic() - received),
            on_scalar=lambda scalar: _forward(ctx, researcher_id, request, scalar),
            gpu=device != "cpu",
        )
        if result.sample_count <= 0:
            raise ValidationError("the training plan reported no training samples")
        extras_out.extend(Path(p) for p in result.extras_out.values())
        out_blob = ctx.blobs.put_file(params_out, readers=[researcher_id])
        extra_blobs = {
            name: ctx.blobs.put_file(Path(path), readers=[researcher_id])
            for name, path in result.extras_out.items()
        }
    except FedwardError as exc:
        outcome = outcome_of(exc) if isinstance(exc, JobError) else "failed"
        ctx.services.jobs.finish(audit_id, outcome, message=str(exc))
        raise
    except Exception:
        ctx.services.jobs.finish(audit_id, "failed", message="internal error")
        raise
    finally:
        for path in [params_in, params_out, *map(Path, extras_in.values()), *extras_out]:
            path.unlink(missing_ok=True)
    ctx.services.jobs.finish(audit_id, "succeeded", metrics=result.metrics)
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


def _forward(
    ctx: NodeContext, researcher_id: str, request: TrainRequest, scalar: wire.ScalarOut
) -> None:
    """A plan's progress scalar, to the researcher who asked (their TensorBoard)."""
    event = ScalarEvent(
        request_id=request.request_id,
        experiment_id=request.experiment_id,
        round_index=request.round_index,
        name=scalar.name[:200],
        value=scalar.value,
        step=max(0, scalar.step),
    )
    ctx.send_event(researcher_id, event)
