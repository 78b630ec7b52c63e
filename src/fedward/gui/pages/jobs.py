"""Jobs: the history (status, duration, researcher, dataset) and one job's metrics."""

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

HISTORY_LIMIT = 500


def _dataset_names(visit: Visit) -> dict[str, str]:
    return {d.dataset_id: d.name for d in visit.context.services.datasets.list()}


def _plan_names(visit: Visit) -> dict[str, str]:
    return {p.digest: p.name for p in visit.context.services.plans.list()}


@page(Permission.VIEW)
async def list_jobs(visit: Visit) -> Response:
    services = visit.context.services
    jobs = await run_in_threadpool(services.jobs.list, HISTORY_LIMIT)
    names = await run_in_threadpool(_dataset_names, visit)
    return await visit.render("jobs.html", {"jobs": jobs, "dataset_names": names})


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
