"""Datasets: list, add through the folder browser (data root only), preview, delete."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from fedward.errors import FedwardError, NotFound
from fedward.gui.guards import Visit, error_page, page
from fedward.gui.preview_text import preview_facts, table_cell
from fedward.gui.roles import Permission
from fedward.gui.thumbnails import thumbnail_files, thumbnail_png


@page(Permission.VIEW)
async def list_datasets(visit: Visit) -> Response:
    datasets = await run_in_threadpool(visit.context.services.datasets.list)
    return await visit.render("datasets.html", {"datasets": datasets})


@page(Permission.MANAGE_DATASETS)
async def new_dataset(visit: Visit) -> Response:
    context = visit.context
    params = visit.request.query_params
    folder = params.get("dir", "")
    values: dict[str, Any] = {
        "browser_enabled": context.folders.enabled,
        "listing": None,
        "browse_error": "",
        "chosen_path": params.get("path", ""),
        "data_types": context.services.datasets.data_types(),
        "form": {key: params.get(key, "") for key in ("name", "tags", "description", "data_type")},
    }
    if context.folders.enabled:
        try:
            values["listing"] = await run_in_threadpool(context.folders.list, folder)
        except FedwardError as exc:
            values["browse_error"] = str(exc)
            values["listing"] = await run_in_threadpool(context.folders.list, "")
    return await visit.render("dataset_new.html", values)


@page(Permission.MANAGE_DATASETS)
async def add_dataset(visit: Visit) -> Response:
    context = visit.context
    relative = visit.field("path")
    fields = {key: visit.field(key) for key in ("data_type", "name", "tags", "description")}
    back = "/datasets/new?" + "&".join(
        f"{key}={quote(value, safe='')}" for key, value in {**fields, "path": relative}.items()
    )

    def add() -> str:
        absolute = context.folders.resolve(relative)
        record = context.services.datasets.add(
            fields["data_type"],
            absolute,
            fields["name"],
            fields["tags"],
            fields["description"],
            by=visit.username,
        )
        return record.dataset_id

    try:
        dataset_id = await run_in_threadpool(add)
    except FedwardError as exc:
        return await visit.done(back, str(exc), error=True)
    return await visit.done(f"/datasets/{dataset_id}", f"Dataset {fields['name']!r} added.")


@page(Permission.VIEW)
async def show_dataset(visit: Visit) -> Response:
    datasets = visit.context.services.datasets
    dataset_id = visit.request.path_params["dataset_id"]
    try:
        record = await run_in_threadpool(datasets.get, dataset_id)
    except FedwardError as exc:
        return await error_page(visit.request, 404, "No such dataset", str(exc))
    preview: dict[str, Any] = {}
    preview_error = ""
    try:
        preview = await run_in_threadpool(datasets.preview, record.dataset_id)
    except FedwardError as exc:
        preview_error = str(exc)
    table = None
    if isinstance(preview.get("columns"), list) and isinstance(preview.get("rows"), list):
        rows = [[table_cell(value) for value in row] for row in preview["rows"]]
        table = {"columns": preview["columns"], "rows": rows}
    return await visit.render(
        "dataset_detail.html",
        {
            "dataset": record,
            "table": table,
            "facts": preview_facts(preview),
            "thumbnails": list(enumerate(thumbnail_files(preview))),
            "preview_error": preview_error,
        },
    )


@page(Permission.VIEW)
async def show_thumbnail(visit: Visit) -> Response:
    datasets = visit.context.services.datasets
    dataset_id = visit.request.path_params["dataset_id"]
    index = visit.request.path_params["index"]

    def render() -> bytes:
        record = datasets.get(dataset_id)
        files = thumbnail_files(datasets.preview(record.dataset_id))
        if index >= len(files):
            raise NotFound(f"dataset {dataset_id} has no image number {index}")
        return thumbnail_png(record.path, files[index])

    try:
        png = await run_in_threadpool(render)
    except FedwardError as exc:
        return await error_page(visit.request, 404, "No such image", str(exc))
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@page(Permission.MANAGE_DATASETS)
async def delete_dataset(visit: Visit) -> Response:
    dataset_id = visit.request.path_params["dataset_id"]
    return await visit.attempt(
        lambda: visit.context.services.datasets.delete(dataset_id, by=visit.username),
        "/datasets",
        f"Dataset {dataset_id} deleted.",
        f"/datasets/{quote(dataset_id, safe='')}",
    )


routes = [
    Route("/datasets", list_datasets, methods=["GET"]),
    Route("/datasets", add_dataset, methods=["POST"]),
    Route("/datasets/new", new_dataset, methods=["GET"]),
    Route("/datasets/{dataset_id}", show_dataset, methods=["GET"]),
    Route("/datasets/{dataset_id}/thumbnails/{index:int}", show_thumbnail, methods=["GET"]),
    Route("/datasets/{dataset_id}/delete", delete_dataset, methods=["POST"]),
]
