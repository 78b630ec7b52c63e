"""Jobs: the history (status, duration, researcher, dataset), paged, and one job's metrics.

Pages are ``PAGE_SIZE`` jobs, newest first; page N reads the newest (N+1) pages and
shows the last, which stays cheap for the depths a person pages to (the job log holds
one row per job: thousands, not millions).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from fedward.errors import FedwardError
from fedward.gui.guards import Visit, error_page, page
from fedward.gui.metrics_chart import Series, bar_chart, line_chart
from fedward.gui.roles import Permission
from fedward.node.services import JobRecord

HISTORY_LIMIT = 500  # rounds of one experiment, for its charts
PAGE_SIZE = 50
MAX_PAGE = 1000


def _dataset_names(visit: Visit) -> dict[str, str]:
    return {d.dataset_id: d.name for d in visit.context.services.datasets.list()}


def _plan_names(visit: Visit) -> dict[str, str]:
    return {p.digest: p.name for p in visit.context.services.plans.list()}


def _page_number(text: str) -> int:
    return min(int(text), MAX_PAGE) if text.isdigit() and len(text) < 6 else 0


@page(Permission.VIEW)
async def list_jobs(visit: Visit) -> Response:
    services = visit.context.services
    number = _page_number(visit.request.query_params.get("page", ""))
    # One more than needed: whether an older page exists, without counting the log.
    newest = await run_in_threadpool(services.jobs.list, (number + 1) * PAGE_SIZE + 1)
    jobs = newest[number * PAGE_SIZE : (number + 1) * PAGE_SIZE]
    names = await run_in_threadpool(_dataset_names, visit)
    return await visit.render(
        "jobs.html",
        {
            "jobs": jobs,
            "dataset_names": names,
            "page_number": number,
            "has_older": len(newest) > (number + 1) * PAGE_SIZE,
        },
    )


def experiment_series(job: JobRecord, history: list[JobRecord]) -> list[Series]:
    """Each metric over the rounds of ``job``'s experiment on the same dataset."""
    rounds = sorted(
        (j for j in history if j.experiment_id == job.experiment_id and j.metrics),
        key=lambda j: j.round_index,
    )
    names = sorted({name for j in rounds for name in j.metrics})
    return [
        Series(name, [(j.round_index, j.metrics[name]) for j in rounds if name in j.metrics])
        for name in names
    ]


@page(Permission.VIEW)
async def show_job(visit: Visit) -> Response:
    services = visit.context.services
    try:
        job = await run_in_threadpool(services.jobs.get, visit.request.path_params["job_id"])
    except FedwardError as exc:
        return await error_page(visit.request, 404, "No such job", str(exc))
    history = await run_in_threadpool(services.jobs.list, HISTORY_LIMIT)
    series = experiment_series(job, history)
    values: dict[str, Any] = {
        "job": job,
        "dataset_name": (await run_in_threadpool(_dataset_names, visit)).get(job.dataset_id),
        "plan_name": (await run_in_threadpool(_plan_names, visit)).get(job.plan_digest),
        "bar_chart": bar_chart(job.metrics, f"metrics of job {job.job_id}"),
        "line_chart": line_chart(series, f"metrics by round, experiment {job.experiment_id}")
        if len({p[0] for s in series for p in s.points}) > 1
        else None,
    }
    return await visit.render("job_detail.html", values)


routes = [
    Route("/jobs", list_jobs, methods=["GET"]),
    Route("/jobs/{job_id}", show_job, methods=["GET"]),
]
