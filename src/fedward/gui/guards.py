"""The checks every page runs before its handler: signed in, allowed, CSRF token.

A page handler is written as ``async def handler(visit: Visit) -> Response`` and
wrapped with ``@page(Permission.X)``. The wrapper

1. finds the session from the cookie; none: a GET goes to the login page (coming back
   afterwards), anything else is answered 303 to the login page and does nothing;
2. for every method but GET/HEAD, reads the form and compares its ``csrf_token`` with
   the session's (constant-time); a missing or wrong token is refused with 403 and
   written to the security log;
3. refuses with 403 a user whose role lacks the permission.

``render`` and ``done`` give handlers the shared page values and the flash message.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from fedward.errors import FedwardError
from fedward.gui.context import GuiContext
from fedward.gui.rendering import redirect, template_response
from fedward.gui.roles import Permission, allows
from fedward.gui.sessions import Session

SESSION_COOKIE = "fedward_session"
SAFE_METHODS = frozenset({"GET", "HEAD"})


def gui_context(request: Request) -> GuiContext:
    context: GuiContext = request.app.state.gui
    return context


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass
class Visit:
    """One signed-in request: who, with which session, and the posted form if any."""

    request: Request
    context: GuiContext
    session: Session
    token: str
    form: FormData

    @property
    def username(self) -> str:
        return self.session.username

    def can(self, permission: Permission) -> bool:
        return allows(self.session.role, permission)

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name, default)
        return value if isinstance(value, str) else default

    async def render(self, name: str, values: dict[str, Any], status_code: int = 200) -> Response:
        flash = await run_in_threadpool(self.context.sessions.pop_flash, self.token)
        kind, _, message = flash.partition(":")
        shared = {
            **_signed_in_values(self.request, self.context, self.session),
            "flash": {"kind": kind, "message": message} if message else None,
        }
        return template_response(self.request, name, {**shared, **values}, status_code)

    async def done(self, url: str, message: str, *, error: bool = False) -> Response:
        """Redirect to ``url`` with a message for the next page."""
        flash = f"{'error' if error else 'ok'}:{message}"
        await run_in_threadpool(self.context.sessions.set_flash, self.token, flash)
        return redirect(url)

    async def attempt(
        self, action: Callable[[], Any], success_url: str, message: str, failure_url: str
    ) -> Response:
        """Run a service call off the event loop; its refusal becomes an error message."""
        try:
            await run_in_threadpool(action)
        except FedwardError as exc:
            return await self.done(failure_url, str(exc), error=True)
        return await self.done(success_url, message)

    def audit(self, kind: str, detail: str = "", subject: str = "") -> Awaitable[object]:
        return run_in_threadpool(
            self.context.services.audit.record, kind, self.username, detail, subject
        )


Handler = Callable[[Visit], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


def _signed_in_values(request: Request, context: GuiContext, session: Session) -> dict[str, Any]:
    """What the layout needs to show the menu and the sign-out button."""
    return {
        "user": session,
        "csrf_token": session.csrf_token,
        "can": lambda permission: allows(session.role, permission),
        "node_id": context.node.node_id,
        "path": request.url.path,
    }


async def error_page(request: Request, status_code: int, title: str, message: str) -> Response:
    """An error inside the layout: with the menu and sign-out for a signed-in user."""
    context = gui_context(request)
    session = await run_in_threadpool(context.sessions.find, request.cookies.get(SESSION_COOKIE))
    values: dict[str, Any] = {"user": None, "path": request.url.path}
    if session is not None:
        values = _signed_in_values(request, context, session)
    return template_response(
        request, "error.html", {**values, "title": title, "message": message}, status_code
    )


def _csrf_token_matches(form: FormData, session: Session) -> bool:
    sent = form.get("csrf_token")
    return isinstance(sent, str) and hmac.compare_digest(sent.encode(), session.csrf_token.encode())


def page(permission: Permission) -> Callable[[Handler], Endpoint]:
    def decorate(handler: Handler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            context = gui_context(request)
            token = request.cookies.get(SESSION_COOKIE, "")
            session = await run_in_threadpool(context.sessions.find, token)
            if session is None:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                if request.method in SAFE_METHODS:
                    return redirect("/login?next=" + quote(target, safe=""))
                return redirect("/login")
            form = FormData()
            if request.method not in SAFE_METHODS:
                form = await request.form()
            visit = Visit(request, context, session, token, form)
            if request.method not in SAFE_METHODS and not _csrf_token_matches(form, session):
                await run_in_threadpool(
                    context.services.audit.record,
                    "csrf_refused",
                    session.username,
                    f"{request.method} {request.url.path} from {client_address(request)}",
                )
                return await visit.render(
                    "error.html",
                    {
                        "title": "Request refused",
                        "message": "This form was not sent by a page of this GUI (missing or "
                        "wrong CSRF token). Reload the page and try again.",
                    },
                    403,
                )
            if not allows(session.role, permission):
                return await visit.render(
                    "error.html",
                    {
                        "title": "Not allowed",
                        "message": f"Your role ({session.role}) does not allow this. "
                        "Ask an administrator.",
                    },
                    403,
                )
            return await handler(visit)

        return endpoint

    return decorate
