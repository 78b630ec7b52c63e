"""Training plans: versions grouped by plan, the text that runs, diffs, decisions.

A pending version is reviewed against the version of the same plan approved now (else
the one it follows): the list links to that diff, and the plan page shows it above the
full source. Approving and rejecting go through ``PlanService``, which writes the
decision and its audit entry in one transaction, in the signed-in user's name.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import Response
from starlette.routing import Route

from fedward.errors import FedwardError, ValidationError
from fedward.gui.guards import Visit, error_page, page
from fedward.gui.plan_lineages import REVIEW_STATES, group_by_lineage
from fedward.gui.roles import Permission
from fedward.gui.source_view import highlighted_diff, highlighted_python
from fedward.node.services import PlanRecord, canonical_source, plan_diff

MAX_UPLOAD_BYTES = 1 << 20
AGAINST_CHOICES = ("approved", "previous")


def _plan_url(plan_id: str) -> str:
    return f"/plans/{quote(plan_id, safe='')}"


@page(Permission.VIEW)
async def list_plans(visit: Visit) -> Response:
    state = visit.request.query_params.get("status", "")
    state = state if state in REVIEW_STATES else ""
    every = await run_in_threadpool(visit.context.services.plans.list)
    return await visit.render(
        "plans.html",
        {
            "lineages": group_by_lineage(every, state),
            "status": state,
            "counts": Counter(plan.review_state for plan in every),
            "total": len(every),
            "statuses": REVIEW_STATES,
        },
    )


async def _get_plan(visit: Visit) -> PlanRecord | Response:
    plan_id = visit.request.path_params["plan_id"]
    try:
        return await run_in_threadpool(visit.context.services.plans.get, plan_id)
    except FedwardError as exc:
        return await error_page(visit.request, 404, "No such training plan", str(exc))


def _plan_page_values(visit: Visit, plan: PlanRecord) -> dict[str, Any]:
    plans = visit.context.services.plans
    lineage = plans.lineage(plan.plan_id)
    by_id = {record.plan_id: record for record in lineage}
    approved = plans.approved_version(plan)
    base = approved or by_id.get(plan.previous_plan_id or "")
    review = plan_diff(base, plan) if base is not None and plan.status == "pending" else None
    return {
        "plan": plan,
        "lineage": list(reversed(lineage)),
        "approved": approved,
        "previous": by_id.get(plan.previous_plan_id or ""),
        "successor": by_id.get(plan.superseded_by or ""),
        "review": review,
        "review_html": highlighted_diff(review.lines) if review else None,
        "source_html": highlighted_python(canonical_source(plan)),
        "original_html": highlighted_python(plan.source),
        "can_decide": visit.can(Permission.DECIDE_PLANS),
    }


@page(Permission.VIEW)
async def show_plan(visit: Visit) -> Response:
    plan = await _get_plan(visit)
    if isinstance(plan, Response):
        return plan
    values = await run_in_threadpool(_plan_page_values, visit, plan)
    return await visit.render("plan_detail.html", values)


@page(Permission.VIEW)
async def diff_plan(visit: Visit) -> Response:
    plan = await _get_plan(visit)
    if isinstance(plan, Response):
        return plan
    against = visit.request.query_params.get("against", "approved")
    plans = visit.context.services.plans
    try:
        base = await run_in_threadpool(plans.review_base, plan, against)
    except FedwardError as exc:
        return await error_page(visit.request, 404, "No such version to compare with", str(exc))
    if base is None:
        return await error_page(
            visit.request,
            404,
            "Nothing to compare with",
            f"This is version {plan.version} of {plan.name}: no earlier version is on this node.",
        )
    diff = await run_in_threadpool(plan_diff, base, plan)
    approved = await run_in_threadpool(plans.approved_version, plan)
    return await visit.render(
        "plan_diff.html",
        {
            "plan": plan,
            "previous": base,
            "diff": diff,
            "diff_html": highlighted_diff(diff.lines),
            "against": against,
            "has_approved": approved is not None,
            "has_previous": plan.previous_plan_id is not None,
        },
    )


@page(Permission.DECIDE_PLANS)
async def approve_plan(visit: Visit) -> Response:
    plan_id = visit.request.path_params["plan_id"]
    notes = visit.field("notes")
    return await visit.attempt(
        lambda: visit.context.services.plans.approve(plan_id, visit.username, notes),
        _plan_url(plan_id),
        "Training plan approved: nodes may now train with this exact code.",
        _plan_url(plan_id),
    )


@page(Permission.DECIDE_PLANS)
async def reject_plan(visit: Visit) -> Response:
    plan_id = visit.request.path_params["plan_id"]
    notes = visit.field("notes")
    return await visit.attempt(
        lambda: visit.context.services.plans.reject(plan_id, visit.username, notes),
        _plan_url(plan_id),
        "Training plan rejected; the researcher will see your notes.",
        _plan_url(plan_id),
    )


@page(Permission.DELETE_PLANS)
async def delete_plan(visit: Visit) -> Response:
    plan_id = visit.request.path_params["plan_id"]
    return await visit.attempt(
        lambda: visit.context.services.plans.delete(plan_id, visit.username),
        "/plans",
        f"Training plan {plan_id} deleted.",
        _plan_url(plan_id),
    )


@page(Permission.REGISTER_PLANS)
async def new_plan(visit: Visit) -> Response:
    return await visit.render("plan_new.html", {"can_decide": visit.can(Permission.DECIDE_PLANS)})


async def _posted_source(visit: Visit) -> str:
    """The source from the upload field if a file was chosen, else from the text area."""
    upload = visit.form.get("source_file")
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise ValidationError(f"the plan file is larger than {MAX_UPLOAD_BYTES} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError("the plan file is not UTF-8 text") from exc
    return visit.field("source").replace("\r\n", "\n")


@page(Permission.REGISTER_PLANS)
async def register_plan(visit: Visit) -> Response:
    try:
        source = await _posted_source(visit)
    except FedwardError as exc:
        return await visit.done("/plans/new", str(exc), error=True)
    approve = visit.field("approve") == "yes" and visit.can(Permission.DECIDE_PLANS)
    try:
        record = await run_in_threadpool(
            lambda: visit.context.services.plans.register(
                source,
                visit.field("class_name").strip(),
                visit.field("name"),
                visit.field("description"),
                visit.username,
                approve=approve,
            )
        )
    except FedwardError as exc:
        return await visit.done("/plans/new", str(exc), error=True)
    return await visit.done(
        _plan_url(record.plan_id),
        f"Training plan “{record.name}” registered as version {record.version}.",
    )


@page(Permission.REGISTER_PLANS)
async def update_plan(visit: Visit) -> Response:
    plan_id = visit.request.path_params["plan_id"]
    try:
        source = await _posted_source(visit)
        record = await run_in_threadpool(
            visit.context.services.plans.update, plan_id, source, visit.username
        )
    except FedwardError as exc:
        return await visit.done(_plan_url(plan_id), str(exc), error=True)
    return await visit.done(
        _plan_url(record.plan_id),
        f"New version registered (version {record.version}); it waits for approval.",
    )


routes = [
    Route("/plans", list_plans, methods=["GET"]),
    Route("/plans", register_plan, methods=["POST"]),
    Route("/plans/new", new_plan, methods=["GET"]),
    Route("/plans/{plan_id}", show_plan, methods=["GET"]),
    Route("/plans/{plan_id}/diff", diff_plan, methods=["GET"]),
    Route("/plans/{plan_id}/approve", approve_plan, methods=["POST"]),
    Route("/plans/{plan_id}/reject", reject_plan, methods=["POST"]),
    Route("/plans/{plan_id}/delete", delete_plan, methods=["POST"]),
    Route("/plans/{plan_id}/update", update_plan, methods=["POST"]),
]
