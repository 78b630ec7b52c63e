"""``handle_train``: check a training request, run it in a job worker, reply.

Order matters: the dataset and the plan are checked before anything runs; the plan's
digest is computed by the node over the canonical text of what it downloaded (with a
size cap), with its own algorithm, and that canonical text is what the worker imports
(it checks its sha256 again before loading it). What the job returns comes as sealed
memory files the worker can no longer change (``jobs.sealed_results``), checked — the
model's layout, finite values, a plausible sample count — before anything is uploaded
(``jobs.results``). Every job that starts is in the job log with its outcome, under
the id its reply carries; every refused request is in the audit log.

A round's request is idempotent (``round_jobs``): a researcher that resumed after a
crash sends it again, and the repeat gets the outcome of the job the first one started,
running or finished, instead of a refusal or a second job, as long as the upload server
still holds the update that outcome names (``_offered_again``).

When a job fails, the reply says what the plan raised and where, in the plan's own lines
(``PlanLine``: numbers in its canonical text, each line's text from the node's copy of
the plan), with the node's paths masked; the worker's own word for the line is never
used.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fedward.core.messages import (
    ErrorReply,
    PlanLine,
    Reply,
    ScalarEvent,
    SecAggReadyReply,
    TrainReply,
    TrainRequest,
)
from fedward.errors import FedwardError, JobError, PlanNotApproved, ValidationError
from fedward.learning.plan_source import write_plan_file
from fedward.node import privacy_policy, secagg_handler, update_codecs
from fedward.node.gpu import choose_device
from fedward.node.handlers import NodeContext, fetch_plan
from fedward.node.jobs import wire
from fedward.node.jobs.exchange import WorkerKey
from fedward.node.jobs.failures import outcome_of
from fedward.node.jobs.job_folder import JobFolder, result_name
from fedward.node.jobs.path_masks import mask_paths, node_places
from fedward.node.jobs.results import checked_layout
from fedward.node.jobs.sealed_results import TakenResult, take_result
from fedward.node.round_jobs import RoundKey, Ticket, request_fingerprint
from fedward.node.update_uploads import AnnouncedReply, UpdateUploads
from fedward.storage.node_records import DatasetRecord, JobOutcome

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


def handle_train(
    ctx: NodeContext, researcher_id: str, request: TrainRequest
) -> Reply | AnnouncedReply:
    """Run the request's job, or, for a repeat of a round's request (a researcher that
    resumed), answer with the outcome of the job it started (``round_jobs``)."""
    received = time.monotonic()
    key = RoundKey(researcher_id, request.experiment_id, request.round_index)
    fingerprint = request_fingerprint(request)
    ticket = ctx.round_jobs.enter(key, fingerprint)
    if not ticket.owner:
        log.info(
            "request %s from %s repeats round %d of %s: answered with that job's outcome",
            request.request_id,
            researcher_id,
            request.round_index,
            request.experiment_id,
        )
        wait_s = job_deadline_s(request.deadline_s, time.monotonic() - received)
        outcome = ctx.round_jobs.outcome(ticket, request.request_id, wait_s)
        if not isinstance(outcome, TrainReply) or _offered_again(ctx, outcome):
            return outcome
        log.info("the update of that job is gone from the upload server: training again")
        ctx.round_jobs.forget(ticket)
        ticket = ctx.round_jobs.enter(key, fingerprint)
        if not ticket.owner:  # another repeat started it again first
            return ctx.round_jobs.outcome(ticket, request.request_id, wait_s)
    reply: Reply | AnnouncedReply | None = None
    try:
        reply = _train(ctx, researcher_id, request, received)
        if isinstance(reply, AnnouncedReply):
            return AnnouncedReply(reply.reply, functools.partial(_finish, ctx, ticket, reply))
        return reply
    except FedwardError as exc:  # refused before a job started: repeats hear the same
        reply = ErrorReply(request_id=request.request_id, code=exc.code, message=str(exc))
        raise
    finally:
        sent = reply.reply if isinstance(reply, AnnouncedReply) else reply
        ctx.round_jobs.finish(ticket, sent or _INTERNAL_ERROR)


def _offered_again(ctx: NodeContext, reply: TrainReply) -> bool:
    """Whether the upload server still holds the blobs a kept outcome names, offered
    anew to the researcher. The researcher that fetched them may have confirmed them
    kept (a round run before, then retried from scratch), and the server then deletes
    them soon: the job must run again rather than announce blobs that are gone."""
    blobs = [reply.params_blob, *reply.extra_blobs.values()]
    return all(ctx.blobs.offer_again(blob_id) for blob_id in blobs)


def _finish(ctx: NodeContext, ticket: Ticket, announced: AnnouncedReply) -> ErrorReply | None:
    """Once the reply is out: a job whose uploads failed after all is forgotten, so that
    a repeated request runs it again."""
    failed = announced.finish()
    if failed is not None:
        ctx.round_jobs.forget(ticket)
    return failed


_INTERNAL_ERROR = ErrorReply(
    request_id="internal",
    code="internal",
    message="internal error on the node; the node's log has the details",
)


def _train(
    ctx: NodeContext, researcher_id: str, request: TrainRequest, received: float
) -> Reply | AnnouncedReply:
    dataset = ctx.services.datasets.checked(request.dataset_id)
    plan = fetch_plan(ctx, request.plan_blob)
    check_approved(
        ctx,
        researcher_id,
        plan.digest,
        f"experiment {request.experiment_id} round {request.round_index} "
        f"dataset {dataset.dataset_id}",
    )
    privacy_policy.check_request(ctx, researcher_id, request, dataset.dataset_id)
    folder = ctx.runner.folder(request.experiment_id)
    # The canonical text, the one the digest binds, is what the worker imports.
    plan_path, plan_sha256 = write_plan_file(plan.canonical, folder.inputs)
    device = choose_device(
        ctx.config.gpu, bool(request.training_args.get("use_gpu", False)), ctx.device_probe
    )
    # One id for the job everywhere: the job log, the worker's files, the reply.
    job_id = ctx.services.jobs.start(
        request.experiment_id, request.round_index, researcher_id, dataset.dataset_id, plan.digest
    )
    job = _Job(job_id, folder, dataset, plan_path, plan_sha256, device, received)
    try:
        ran = _run(ctx, researcher_id, request, job)
    except FedwardError as exc:
        places = node_places(dataset.path, folder.root, (ctx.config.state_dir, "<node>"))
        message = mask_paths(str(exc), places)
        ctx.services.jobs.finish(job_id, _outcome(exc), message=message)
        ctx.runner.discard_work(request.experiment_id)
        log.info("job %s for %s failed: %s", job_id, researcher_id, message)
        return ErrorReply(
            request_id=request.request_id,
            code=exc.code,
            message=message[:20_000],
            job_id=job_id,
            plan_lines=_plan_lines(exc, plan.canonical),
        )
    except Exception:
        ctx.services.jobs.finish(job_id, "failed", message="internal error")
        ctx.runner.discard_work(request.experiment_id)
        log.exception("internal error in job %s", job_id)
        return ErrorReply(
            request_id=request.request_id,
            code="internal",
            message="internal error on the node; the node's log has the details",
            job_id=job_id,
        )
    if isinstance(ran, _Uploading):
        return AnnouncedReply(ran.reply, functools.partial(_end_uploads, ctx, ran))
    ctx.services.jobs.finish(job_id, "succeeded", metrics=ran.metrics)
    return ran


def _end_uploads(ctx: NodeContext, uploading: _Uploading) -> ErrorReply | None:
    """After the reply went out: the job succeeded once its uploads are stored. Never
    raises (``AnnouncedReply``)."""
    reply = uploading.reply
    job_id = reply.job_id
    try:
        try:
            uploading.uploads.wait()
        finally:
            uploading.remove_scratch()
    except Exception as exc:
        message = f"the update's upload failed after the reply announced it: {exc}"
        log.warning("job %s: %s", job_id, message)
        code = exc.code if isinstance(exc, FedwardError) else "internal"
        failed = ErrorReply(request_id=reply.request_id, code=code, message=message, job_id=job_id)
        _record_end(ctx, job_id, "failed", message=message)
        return failed
    _record_end(ctx, job_id, "succeeded", metrics=reply.metrics)
    return None


def _record_end(ctx: NodeContext, job_id: str, outcome: JobOutcome, **details: Any) -> None:
    try:
        ctx.services.jobs.finish(job_id, outcome, **details)
    except Exception:  # the job log is the node's; its failure must not stop the daemon
        log.exception("could not record the end of job %s", job_id)


@dataclass(frozen=True)
class _Uploading:
    """A job's reply, and its update's uploads, registered but maybe not yet stored."""

    reply: TrainReply
    uploads: UpdateUploads
    remove_scratch: Callable[[], None]


@dataclass(frozen=True)
class _Job:
    job_id: str
    folder: JobFolder
    dataset: DatasetRecord
    plan_path: Path
    plan_sha256: str
    device: str
    received: float


def _run(
    ctx: NodeContext, researcher_id: str, request: TrainRequest, job: _Job
) -> _Uploading | SecAggReadyReply:
    """Download the inputs, run the job, check what it returned and start uploading it:
    the reply may go out once the uploads are registered (``update_uploads``)."""
    folder, dataset, job_id = job.folder, job.dataset, job.job_id
    params_in = folder.inputs / f"{job_id}.params.safetensors"
    extras_in: dict[str, str] = {}
    produced = [result_name(job_id, "encoded"), result_name(job_id, "protected")]
    taken: list[TakenResult] = []

    def remove_scratch() -> None:
        for path in [params_in, *map(Path, extras_in.values())]:
            path.unlink(missing_ok=True)
        folder.discard(*produced)
        for result in taken:
            result.close()

    cap = ctx.config.jobs.disk_mb << 20
    uploads = UpdateUploads(ctx.blobs, researcher_id)
    handed_over = False
    try:
        # Inputs are scratch: deleted when the job ends, fetched again if it is repeated.
        ctx.blobs.get_file(request.params_blob, params_in, max_bytes=cap, durable=False)
        update_codecs.receive_params(folder.root, request, params_in)  # a delta -> full
        layout = checked_layout(params_in, "parameters sent")
        for name, blob_id in request.extra_blobs.items():
            path = folder.inputs / f"{job_id}.in.{name}.safetensors"
            ctx.blobs.get_file(blob_id, path, max_bytes=cap, durable=False)
            checked_layout(path, f"extra tensors {name!r}")
            extras_in[name] = str(path)
        spec = wire.JobSpec(
            job_id=job_id,
            node_id=ctx.config.node_id,
            round_index=request.round_index,
            plan_path=str(job.plan_path),
            plan_sha256=job.plan_sha256,
            plan_class=request.plan_class,
            model_args=request.model_args,
            training_args=privacy_policy.plan_training_args(request),
            dataset_id=dataset.dataset_id,
            data_type=dataset.data_type,
            dataset_path=str(dataset.path),
            dataset_metadata=dict(dataset.options),
            params_in=str(params_in),
            extras_in=extras_in,
            device=job.device,
            cpu_seconds=ctx.config.jobs.cpu_s,
        )
        # The result has the model's layout, so its size is known: a few KiB of header more.
        result_cap = params_in.stat().st_size + (1 << 20)
        job_result = ctx.runner.run(
            WorkerKey(request.experiment_id, request.plan_blob, dataset.dataset_id),
            spec,
            dataset=dataset.path,
            deadline_s=job_deadline_s(request.deadline_s, time.monotonic() - job.received),
            on_scalar=lambda scalar: _forward(ctx, researcher_id, request, scalar),
            gpu=job.device != "cpu",
        )
        result = job_result.report
        # Sealed files the worker can no longer change: read once, hashed and checked.
        taken.append(take_result(job_result.files, result.extras, result_cap, layout))
        _check_sample_count(result.sample_count, dataset.sample_count)
        collected = taken[0].params
        extras_out = taken[0].extras
        out_path = collected.path
        if privacy_policy.rewrites_update(request):
            out_path = folder.outputs / result_name(job_id, "protected")
        weight = privacy_policy.protect_update(
            ctx,
            researcher_id,
            request,
            dataset.dataset_id,
            params_in,
            collected.path,
            out_path,
            result.sample_count,
        )
        if request.secure_aggregation is not None:
            if extras_out:
                raise JobError("secure aggregation sends one sum: the job may not return extras")
            return secagg_handler.hold_update(
                ctx,
                researcher_id,
                request,
                out_path,
                layout,
                weight,
                result.metrics,
                {str(k): v for k, v in result.timings.items()},
            )
        encoded = folder.outputs / result_name(job_id, "encoded")
        upload = update_codecs.encode_update(folder.root, request, params_in, out_path, encoded)
        # Unless central DP rewrote it or a codec encoded it, its hash is known already.
        plain = upload == out_path and not privacy_policy.rewrites_update(request)
        known = collected.sha256 if plain else None
        out_blob = uploads.start(upload, known)
        extra_blobs = {  # hashed when collected, and left as they were
            name: uploads.start(extra.path, extra.sha256) for name, extra in extras_out.items()
        }
        reply = TrainReply(
            request_id=request.request_id,
            experiment_id=request.experiment_id,
            round_index=request.round_index,
            params_blob=out_blob,
            sample_count=weight,
            metrics=result.metrics,
            timings={str(k): v for k, v in result.timings.items()},
            extra_blobs=extra_blobs,
            job_id=job_id,
            threads=result.threads,
        )
        handed_over = True
        return _Uploading(reply, uploads, remove_scratch)
    finally:
        if not handed_over:
            uploads.abandon()
            remove_scratch()


def _outcome(error: FedwardError) -> JobOutcome:
    return outcome_of(error) if isinstance(error, JobError) else "failed"


def _plan_lines(error: FedwardError, canonical: str) -> list[PlanLine]:
    """The plan frames a worker reported, with each line's text from the node's own copy
    of the plan (the text the worker ran), never from the worker."""
    if not isinstance(error, JobError):
        return []
    lines = canonical.splitlines()
    return [
        PlanLine(
            line=frame.line,
            function=frame.function,
            # printable: a plan's source may hold a form feed, which no reply may carry
            text=wire.printable(lines[frame.line - 1].strip())[:200]
            if frame.line <= len(lines)
            else "",
        )
        for frame in error.plan_frames
    ]


def _check_sample_count(reported: int, dataset_size: int) -> None:
    """The sample count weighs a node's update: a plan may not claim more than it has."""
    if reported <= 0:
        raise ValidationError("the training plan reported no training samples")
    if dataset_size > 0 and reported > dataset_size:
        raise JobError(
            f"the training plan reported {reported} training samples; the dataset has "
            f"{dataset_size}"
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
