"""Security behaviour seen from a real browser: redirects, CSRF, throttling, roles, cookies.

The GUI runs as a ``fedward gui serve`` process on a node database prepared through the
node services (a researcher's pending plan); no broker or upload server runs, so the
dashboard must also say both are unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from fedward.node.services import open_node_services

from .conftest import Screenshots, sign_in
from .gui_process import PASSWORDS, ROLES, GuiProcess, add_user, write_node_config

PLAN_SOURCE = '''"""A plan a researcher sent for review."""


class ReviewMePlan:
    def train(self, data):
        return len(data)
'''


@dataclass
class SecuredGui:
    gui: GuiProcess
    database: Path
    data_root: Path
    plan_id: str


@pytest.fixture(scope="module")
def secured_gui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredGui]:
    workdir = tmp_path_factory.mktemp("gui-security")
    state_dir, data_root = workdir / "state", workdir / "data"
    config = write_node_config(state_dir, data_root)
    for username, role in ROLES.items():
        add_user(config, username, role, PASSWORDS[username], workdir)
    services = open_node_services(state_dir / "node.sqlite3", data_root)
    try:
        plan = services.plans.request(PLAN_SOURCE, "ReviewMePlan", "please review", "researcher7")
    finally:
        services.close()
    gui = GuiProcess(config, workdir / "gui.log").start()
    try:
        yield SecuredGui(gui, state_dir / "node.sqlite3", data_root, plan.plan_id)
    finally:
        gui.stop()


def plan_status(secured: SecuredGui) -> str:
    services = open_node_services(secured.database, secured.data_root)
    try:
        return services.plans.get(secured.plan_id).status
    finally:
        services.close()


@pytest.mark.parametrize("path", ["/", "/datasets", "/plans", "/jobs", "/users", "/security"])
def test_unauthenticated_page_redirects_to_login(
    secured_gui: SecuredGui, page: Page, path: str
) -> None:
    url = secured_gui.gui.url
    page.goto(url + path)
    expect(page.locator("h1")).to_have_text("Sign in")
    assert page.url.startswith(url + "/login?next=")


def test_login_returns_to_the_page_first_asked_for(
    secured_gui: SecuredGui, page: Page, screenshots: Screenshots
) -> None:
    url = secured_gui.gui.url
    page.goto(url + "/jobs")
    page.fill("input[name=username]", "victor")
    page.fill("input[name=password]", PASSWORDS["victor"])
    page.click("button[type=submit]")
    expect(page).to_have_url(url + "/jobs")
    page.click("nav a:text-is('Dashboard')")
    expect(page.locator("#connectivity .badge.bad")).to_have_count(2)
    screenshots.take(page, "security-dashboard-peers-unreachable")


def test_session_cookie_is_httponly_and_samesite(
    secured_gui: SecuredGui, page: Page, browser_context: BrowserContext
) -> None:
    sign_in(page, secured_gui.gui.url, "victor")
    expect(page.locator("h1")).to_contain_text("hospital1")
    cookies = {c["name"]: c for c in browser_context.cookies()}
    session = cookies["fedward_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""


def test_post_without_csrf_token_is_refused(
    secured_gui: SecuredGui, page: Page, screenshots: Screenshots
) -> None:
    url = secured_gui.gui.url
    sign_in(page, url, "paula")
    page.goto(f"{url}/plans/{secured_gui.plan_id}")
    expect(page.locator("#approve")).to_be_visible()

    # The same request a forged cross-site form would send: the cookie, but no token.
    response = page.request.post(
        f"{url}/plans/{secured_gui.plan_id}/approve", form={"notes": "forged"}
    )
    assert response.status == 403
    wrong = page.request.post(
        f"{url}/plans/{secured_gui.plan_id}/approve",
        form={"notes": "forged", "csrf_token": "not-the-token"},
    )
    assert wrong.status == 403

    # And from the page itself with the token field removed.
    page.evaluate("document.querySelector('#approve-form input[name=csrf_token]').remove()")
    page.click("#approve")
    expect(page.locator("h1")).to_have_text("Request refused")
    screenshots.take(page, "security-csrf-refused")
    assert plan_status(secured_gui) == "pending"

    page.goto(url + "/security?kind=csrf_refused")
    expect(page.locator("#events")).to_contain_text("paula")


def test_viewer_cannot_approve_a_plan(
    secured_gui: SecuredGui, page: Page, screenshots: Screenshots
) -> None:
    url = secured_gui.gui.url
    sign_in(page, url, "victor")
    page.goto(f"{url}/plans/{secured_gui.plan_id}")
    expect(page.locator("#plan-status")).to_have_text("pending")
    expect(page.locator("#approve")).to_have_count(0)
    screenshots.take(page, "security-viewer-plan-view")

    # Even a well-formed request with the viewer's own valid CSRF token is refused.
    token = page.locator("form[action='/logout'] input[name=csrf_token]").input_value()
    response = page.request.post(
        f"{url}/plans/{secured_gui.plan_id}/approve", form={"notes": "", "csrf_token": token}
    )
    assert response.status == 403
    assert "does not allow" in response.text()
    assert plan_status(secured_gui) == "pending"

    page.goto(url + "/users")
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.locator("nav")).not_to_contain_text("Users")


def test_repeated_wrong_passwords_are_slowed_down(
    secured_gui: SecuredGui, page: Page, screenshots: Screenshots
) -> None:
    url = secured_gui.gui.url
    for _ in range(3):
        sign_in(page, url, "alice", "not-the-password")
        expect(page.locator(".flash.error")).to_have_text("wrong user name or password")
    sign_in(page, url, "alice", "still-not-the-password")
    expect(page.locator(".flash.error")).to_contain_text("Too many failed sign-in attempts")
    screenshots.take(page, "security-login-throttled")

    # While the delay runs even the right password is refused, unchecked.
    response = page.request.get(url + "/login")
    assert response.ok
    sign_in(page, url, "alice")
    expect(page.locator(".flash.error")).to_contain_text("Try again in")
    assert "/login" in page.url

    # Other accounts are not locked out by someone guessing alice's password.
    sign_in(page, url, "paula")
    expect(page.locator("h1")).to_contain_text("hospital1")
    page.goto(url + "/security?kind=login_throttled")
    expect(page.locator("#events")).to_contain_text("alice")


def test_login_form_from_elsewhere_is_refused(secured_gui: SecuredGui, page: Page) -> None:
    # No login cookie, as when another site posts to our login form.
    response = page.request.post(
        secured_gui.gui.url + "/login",
        form={"username": "paula", "password": PASSWORDS["paula"], "login_token": "guess"},
        max_redirects=0,
    )
    assert response.status == 403


def test_pages_carry_security_headers(secured_gui: SecuredGui, page: Page) -> None:
    response = page.goto(secured_gui.gui.url + "/login")
    assert response is not None
    headers = response.headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store"
