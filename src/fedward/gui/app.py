"""``create_app(context)``: the GUI as an ASGI application.

The app owns no state of its own: everything lives in the ``GuiContext`` given to it
(node services, accounts, sessions, password checks), which the caller opens and closes. Tests
build one with ``open_gui_context`` and serve it with uvicorn on a free port.
"""

from __future__ import annotations

from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fedward.gui.context import GuiContext
from fedward.gui.favicon import favicon
from fedward.gui.guards import error_page
from fedward.gui.pages import dashboard, datasets, jobs, login, plans, security_log, users
from fedward.gui.rendering import build_templates
from fedward.gui.security_headers import SecurityHeaders
from fedward.gui.source_view import stylesheet
from fedward.gui.trusted_hosts import TrustedHosts

MAX_BODY_BYTES = 2 << 20  # a plan source is at most 1 MiB; forms are small


def _static_directory() -> str:
    return str(resources.files("fedward.gui") / "static")


async def _source_css(request: Request) -> Response:
    return PlainTextResponse(request.app.state.source_css, media_type="text/css")


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    titles = {404: "Not found", 405: "Method not allowed", 413: "Request too large"}
    detail = exc.detail if isinstance(exc, HTTPException) else "Internal error"
    return await error_page(request, status, titles.get(status, "Error"), str(detail))


def create_app(context: GuiContext) -> Starlette:
    routes = [
        *login.routes,
        *dashboard.routes,
        *datasets.routes,
        *plans.routes,
        *jobs.routes,
        *users.routes,
        *security_log.routes,
        Route("/static/source.css", _source_css, methods=["GET"]),
        Route("/favicon.svg", favicon, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Mount("/static", StaticFiles(directory=_static_directory()), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders, tls=context.settings.tls),
            Middleware(TrustedHosts, names=context.settings.trusted_host_names),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _http_error},
        max_body_size=MAX_BODY_BYTES,
    )
    app.state.gui = context
    app.state.templates = build_templates()
    app.state.source_css = stylesheet()
    return app
