"""Turn templates into responses: the Jinja environment, shared page values, redirects.

Autoescaping is on for every template; the only ``Markup`` values come from
``source_view`` and ``metrics_chart``, which escape what they embed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from fedward import __version__
from fedward.gui.roles import Permission


def _when(moment: datetime | float | None) -> str:
    """Every time the GUI shows is UTC, the same clock the node's records use."""
    if moment is None:
        return "—"
    if isinstance(moment, int | float):
        moment = datetime.fromtimestamp(moment, UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "running"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _size(size_bytes: int | None) -> str:
    if size_bytes is None:
        return ""
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def build_templates() -> Jinja2Templates:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("fedward.gui", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["when"] = _when
    environment.filters["duration"] = _duration
    environment.filters["size"] = _size
    environment.globals["Permission"] = Permission
    environment.globals["version"] = __version__
    return Jinja2Templates(env=environment)


def redirect(url: str) -> Response:
    # 303: the browser follows with a GET, so a reload never re-sends the form.
    return RedirectResponse(url, status_code=303)


def template_response(
    request: Request, name: str, values: dict[str, Any], status_code: int = 200
) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, values, status_code=status_code)
