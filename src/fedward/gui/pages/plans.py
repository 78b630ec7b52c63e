"""Training plans: list by status, source, diff with the previous version, decisions.

Approving and rejecting go through ``PlanService``, which writes the decision and its
audit entry in one transaction, in the signed-in user's name.
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
from fedward.gui.roles import Permission
from fedward.gui.source_view import highlighted_python, source_diff
from fedward.node.services import PlanRecord

STATUSES = ("pending", "approved", "rejected")
MAX_UPLOAD_BYTES = 1 << 20


def _plan_url(plan_id: str) -> str:
    return f"/plans/{quote(plan_id, safe='')}"


@page(Permission.VIEW)
async def list_plans(visit: Visit) -> Response:
    status = visit.request.query_params.get("status", "")
    every = await run_in_threadpool(visit.context.services.plans.list)
    shown = [plan for plan in every if plan.status == status] if status in STATUSES else every
    return await visit.render(
        "plans.html",
        {
            "plans": shown,
            "status": status if status in STATUSES else "",
            "counts": Counter(plan.status for plan in every),
            "total": len(every),
            "statuses": STATUSES,
        },
    )


async def _get_plan(visit: Visit) -> PlanRecord | Response:
    plan_id = visit.request.path_params["plan_id"]
    try:
        return await run_in_threadpool(visit.context.services.plans.get, plan_id)
    except FedwardError as exc:
        return error_page(visit.request, 404, "No such training plan", str(exc))


@page(Permission.VIEW)
async def show_plan(visit: Visit) -> Response:
    plan = await _get_plan(visit)
    if isinstance(plan, Response):
        return plan
    values: dict[str, Any] = {
        "plan": plan,
        "source_html": highlighted_python(plan.source),
        "can_decide": visit.can(Permission.DECIDE_PLANS),
    }
    return await visit.render("plan_detail.html", values)


@page(Permission.VIEW)
async def diff_plan(visit: Visit) -> Response:
    plan = await _get_plan(visit)
    if isinstance(plan, Response):
        return plan
    if plan.previous_plan_id is None:
        return error_page(
            visit.request, 404, "No previous version", "This plan is the first version."
        )
    try:
        previous = await run_in_threadpool(visit.context.services.plans.get, plan.previous_plan_id)
    except FedwardError as exc:
        return error_page(visit.request, 404, "Previous version gone", str(exc))
    diff = source_diff(
        previous.source,
        plan.source,
        f"{previous.plan_id} ({previous.status})",
        f"{plan.plan_id} ({plan.status})",
    )
    return await visit.render("plan_diff.html", {"plan": plan, "previous": previous, "diff": diff})


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
    return await visit.done(_plan_url(record.plan_id), f"Training plan {record.name!r} registered.")


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
        _plan_url(record.plan_id), "New version registered; it waits for approval."
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
