"""The security log: sign-ins and their failures, refusals, plan decisions, user changes."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from fedward.gui.guards import Visit, page
from fedward.gui.roles import Permission

LIMIT = 300
# The kinds worth a filter button; the log holds others too (jobs, datasets).
KINDS = (
    "login",
    "login_failed",
    "login_throttled",
    "logout",
    "csrf_refused",
    "plan_decision",
    "dataset_added",
    "dataset_deleted",
    "user_created",
    "user_role_changed",
    "user_password_reset",
    "user_disabled",
    "user_enabled",
    "password_changed",
    "job_started",
    "job_finished",
)


@page(Permission.READ_SECURITY_LOG)
async def security_log(visit: Visit) -> Response:
    kind = visit.request.query_params.get("kind", "")
    chosen = kind if kind in KINDS else None
    events = await run_in_threadpool(visit.context.services.audit.list_events, LIMIT, chosen)
    return await visit.render(
        "security_log.html", {"events": events, "kind": chosen or "", "kinds": KINDS}
    )


routes = [Route("/security", security_log, methods=["GET"])]
