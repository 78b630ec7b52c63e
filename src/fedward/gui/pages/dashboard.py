"""The dashboard: which node this is, whether its daemon runs and under which isolation,
whether it reaches its peers, what it holds."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from fedward.gui.connectivity import check_all
from fedward.gui.guards import Visit, page
from fedward.gui.roles import Permission
from fedward.node.privacy_report import privacy_report
from fedward.node.services import NodeHeartbeat

RECENT_JOBS = 10


def _summary(visit: Visit) -> dict[str, Any]:
    services = visit.context.services
    plans = services.plans.list()
    jobs = services.jobs.list(RECENT_JOBS)
    datasets = services.datasets.list()
    return {
        "dataset_count": len(datasets),
        "dataset_names": {d.dataset_id: d.name for d in datasets},
        "plan_counts": Counter(plan.status for plan in plans),
        "recent_jobs": jobs,
    }


@page(Permission.VIEW)
async def dashboard(visit: Visit) -> Response:
    node = visit.context.node
    summary = await run_in_threadpool(_summary, visit)
    reachability = await run_in_threadpool(check_all, node.broker, node.uploads)
    heartbeat = await run_in_threadpool(NodeHeartbeat(node.state_dir).read)
    privacy = await run_in_threadpool(privacy_report, node)
    return await visit.render(
        "dashboard.html",
        {
            "node": node,
            "heartbeat": heartbeat,
            "daemon_online": heartbeat is not None and heartbeat.online(datetime.now(UTC)),
            "reachability": reachability,
            "approval_required": node.approval_required,
            "privacy": privacy,
            **summary,
        },
    )


routes = [Route("/", dashboard, methods=["GET"])]
