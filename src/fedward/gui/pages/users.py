"""Users: administrators create accounts, reset passwords, change roles, disable accounts;
everyone may change their own password (knowing the current one).

Every change is written to the node's security log in the administrator's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.routing import Route

from fedward.errors import FedwardError, ValidationError
from fedward.gui.guards import SESSION_COOKIE, Visit, client_address, page
from fedward.gui.password_gate import NotChecked, WrongPassword
from fedward.gui.rendering import redirect
from fedward.gui.roles import ROLES, Permission


@page(Permission.MANAGE_USERS)
async def list_users(visit: Visit) -> Response:
    accounts = await run_in_threadpool(visit.context.accounts.list)
    return await visit.render("users.html", {"accounts": accounts, "roles": ROLES})


async def _change(
    visit: Visit, action: Callable[[], Any], kind: str, detail: str, message: str
) -> Response:
    try:
        await run_in_threadpool(action)
    except FedwardError as exc:
        return await visit.done("/users", str(exc), error=True)
    subject = visit.request.path_params.get("username", "")
    await visit.audit(kind, detail, subject)
    return await visit.done("/users", message)


def _new_password(visit: Visit) -> str:
    password = visit.field("password")
    if password != visit.field("password_again"):
        raise ValidationError("the two passwords differ")
    return password


@page(Permission.MANAGE_USERS)
async def create_user(visit: Visit) -> Response:
    accounts = visit.context.accounts
    username = visit.field("username").strip().lower()
    role = visit.field("role")
    return await _change(
        visit,
        lambda: accounts.create(username, _new_password(visit), role),
        "user_created",
        f"{username} as {role}",
        f"User {username} created with role {role}.",
    )


@page(Permission.MANAGE_USERS)
async def reset_password(visit: Visit) -> Response:
    username = visit.request.path_params["username"]
    return await _change(
        visit,
        lambda: visit.context.accounts.set_password(username, _new_password(visit)),
        "user_password_reset",
        f"password of {username} reset; their sessions were closed",
        f"Password of {username} reset.",
    )


@page(Permission.MANAGE_USERS)
async def change_role(visit: Visit) -> Response:
    username = visit.request.path_params["username"]
    role = visit.field("role")
    return await _change(
        visit,
        lambda: visit.context.accounts.set_role(username, role),
        "user_role_changed",
        f"{username} is now {role}",
        f"{username} is now {role}.",
    )


@page(Permission.MANAGE_USERS)
async def set_disabled(visit: Visit) -> Response:
    username = visit.request.path_params["username"]
    disable = visit.field("disabled") == "yes"

    def act() -> None:
        if disable and username == visit.username:
            raise ValidationError("you cannot disable your own account")
        visit.context.accounts.set_disabled(username, disable)

    verb = "disabled" if disable else "enabled"
    return await _change(
        visit, act, f"user_{verb}", f"{username} {verb}", f"Account {username} {verb}."
    )


@page(Permission.VIEW)
async def show_account(visit: Visit) -> Response:
    return await visit.render("account.html", {"error": ""})


@page(Permission.VIEW)
async def change_own_password(visit: Visit) -> Response:
    """Needs the current password, checked under the sign-in throttle (``login_throttle``):
    a session left open or stolen must not become a way to guess the password."""
    accounts = visit.context.accounts
    address = client_address(visit.request)
    current = visit.field("current_password")
    outcome = await visit.context.passwords.check(
        visit.username, address, lambda: accounts.verify_login(visit.username, current)
    )
    if isinstance(outcome, NotChecked):
        await visit.audit("password_change_throttled", f"from {address}", visit.username)
        return await _too_many_attempts(visit, outcome.wait_s)
    if isinstance(outcome, WrongPassword):
        detail = f"from {address}: the current password is wrong"
        await visit.audit("password_change_failed", detail, visit.username)
        if outcome.wait_s > 0:
            return await _too_many_attempts(visit, outcome.wait_s)
        return await visit.done("/account", "the current password is wrong", error=True)
    try:
        await run_in_threadpool(accounts.set_password, visit.username, _new_password(visit))
    except FedwardError as exc:
        return await visit.done("/account", str(exc), error=True)
    await visit.audit("password_changed", "own password changed", visit.username)
    # Changing the password closed every session, this one included.
    response = redirect("/login?notice=password-changed")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def _too_many_attempts(visit: Visit, wait_s: float) -> Response:
    seconds = math.ceil(wait_s)
    response = await visit.render(
        "account.html",
        {"error": f"Too many wrong passwords. Try again in {seconds} s."},
        status_code=429,
    )
    response.headers["Retry-After"] = str(seconds)
    return response


routes = [
    Route("/users", list_users, methods=["GET"]),
    Route("/users", create_user, methods=["POST"]),
    Route("/users/{username}/password", reset_password, methods=["POST"]),
    Route("/users/{username}/role", change_role, methods=["POST"]),
    Route("/users/{username}/disabled", set_disabled, methods=["POST"]),
    Route("/account", show_account, methods=["GET"]),
    Route("/account/password", change_own_password, methods=["POST"]),
]
