"""Sign in and sign out.

The login form has its own CSRF defence (there is no session yet): a random token in an
HttpOnly, SameSite=Strict cookie that must match the form's hidden field. A successful
sign-in always opens a *new* session (no fixation), and every outcome, good or bad, is
written to the node's security log.
"""

from __future__ import annotations

import hmac
import math
import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fedward.errors import AccessDenied
from fedward.gui.accounts import USERNAME_PATTERN, Account
from fedward.gui.guards import (
    SESSION_COOKIE,
    Visit,
    client_address,
    error_page,
    gui_context,
    page,
)
from fedward.gui.password_gate import NotChecked, WrongPassword
from fedward.gui.rendering import redirect, template_response
from fedward.gui.roles import Permission

LOGIN_COOKIE = "fedward_login"
# Fixed texts only: a notice is chosen by key, never echoed from the URL.
NOTICES = {"password-changed": "Password changed. Sign in with the new one."}


def safe_next(target: str) -> str:
    """Only a path on this server: never ``//host`` or ``https://host`` (open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_form(
    request: Request, *, error: str = "", status_code: int = 200, username: str = ""
) -> Response:
    token = secrets.token_urlsafe(32)
    response = template_response(
        request,
        "login.html",
        {
            "login_token": token,
            "error": error,
            "notice": NOTICES.get(request.query_params.get("notice", ""), ""),
            "next": safe_next(request.query_params.get("next", "/")),
            "username": username,
            "user": None,
            "path": "/login",
        },
        status_code,
    )
    secure = gui_context(request).settings.tls
    response.set_cookie(
        LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/login"
    )
    return response


async def show_login(request: Request) -> Response:
    context = gui_context(request)
    session = await run_in_threadpool(context.sessions.find, request.cookies.get(SESSION_COOKIE))
    if session is not None:
        return redirect(safe_next(request.query_params.get("next", "/")))
    return _login_form(request)


async def submit_login(request: Request) -> Response:
    context = gui_context(request)
    form = await request.form()
    sent = form.get("login_token")
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if (
        not isinstance(sent, str)
        or not expected
        or not hmac.compare_digest(sent.encode(), expected.encode())
    ):
        return await error_page(
            request,
            403,
            "Request refused",
            "The sign-in form was not sent by this GUI or has expired. Open the login page again.",
        )
    raw_name = form.get("username")
    password = form.get("password")
    username = raw_name.strip().lower() if isinstance(raw_name, str) else ""
    password = password if isinstance(password, str) else ""
    address = client_address(request)
    valid_name = USERNAME_PATTERN.fullmatch(username) is not None
    actor = username if valid_name else "(not a user name)"
    shown_name = username if valid_name else ""  # not a megabyte echoed back per attempt
    audit = context.services.audit

    def verify() -> Account:
        if not valid_name:
            # No account can have this name: nothing to check, but still a counted failure.
            raise AccessDenied("wrong user name or password")
        return context.accounts.verify_login(username, password)

    outcome = await context.passwords.check(username, address, verify)
    if isinstance(outcome, NotChecked):
        detail = f"from {address}" + (" (password checks busy)" if outcome.reason == "busy" else "")
        await run_in_threadpool(audit.record, "login_throttled", actor, detail)
        return _throttled(request, shown_name, outcome.wait_s)
    if isinstance(outcome, WrongPassword):
        await run_in_threadpool(
            audit.record, "login_failed", actor, f"from {address}: {outcome.error.message}"
        )
        if outcome.wait_s > 0:
            return _throttled(request, shown_name, outcome.wait_s)
        return _login_form(request, error=str(outcome.error), status_code=401, username=shown_name)
    account = outcome
    token = await run_in_threadpool(context.sessions.open, account.username)
    await run_in_threadpool(
        audit.record, "login", account.username, f"from {address} as {account.role}"
    )
    next_url = form.get("next")
    response = redirect(safe_next(next_url if isinstance(next_url, str) else "/"))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=context.settings.tls,
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


def _throttled(request: Request, username: str, wait_s: float) -> Response:
    seconds = math.ceil(wait_s)
    response = _login_form(
        request,
        error=f"Too many failed sign-in attempts. Try again in {seconds} s.",
        status_code=429,
        username=username,
    )
    response.headers["Retry-After"] = str(seconds)
    return response


@page(Permission.VIEW)
async def logout(visit: Visit) -> Response:
    context = visit.context
    await run_in_threadpool(context.sessions.close, visit.token)
    await visit.audit("logout", f"from {client_address(visit.request)}")
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


routes = [
    Route("/login", show_login, methods=["GET"]),
    Route("/login", submit_login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
