"""The security log: sign-ins and their failures, refusals, plan decisions, user changes.

Paged newest first, ``PAGE_SIZE`` events a page, by event id (``?before=ID``), so the
thousandth page costs what the first does.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from fedward.gui.guards import Visit, page
from fedward.gui.roles import Permission

PAGE_SIZE = 100
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
    "password_change_failed",
    "password_change_throttled",
    "train_refused",
    "job_started",
    "job_finished",
)


def _event_id(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 19 else None


@page(Permission.READ_SECURITY_LOG)
async def security_log(visit: Visit) -> Response:
    params = visit.request.query_params
    kind = params.get("kind", "")
    chosen = kind if kind in KINDS else None
    before = _event_id(params.get("before", ""))
    # One more than a page: whether an older page exists, without counting the log.
    events = await run_in_threadpool(
        lambda: visit.context.services.audit.list_events(
            PAGE_SIZE + 1, chosen, before_event_id=before
        )
    )
    older = events[PAGE_SIZE - 1].event_id if len(events) > PAGE_SIZE else None
    return await visit.render(
        "security_log.html",
        {
            "events": events[:PAGE_SIZE],
            "kind": chosen or "",
            "kinds": KINDS,
            "older_than": older,
            "paged": before is not None,
        },
    )


routes = [Route("/security", security_log, methods=["GET"])]
