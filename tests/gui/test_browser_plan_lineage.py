"""The review a data-protection officer does most: a researcher's new version of an
approved plan, compared with the approved one, approved, and the history told honestly.

The researcher's requests go through ``PlanService.request``, the call the node daemon
makes for an approval request arriving over MQTT; everything else happens in Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from fedward.node.services import open_node_services

from .conftest import ConsoleErrors, Screenshots, sign_in
from .gui_process import PASSWORDS, GuiProcess, add_user, write_node_config

V1 = '''class TumourLR:
    """Logistic regression on the tumour table."""

    LEARNING_RATE = 0.1  # from the literature

    def train(self, data):
        return data.mean()
'''
V2 = V1.replace(
    "    LEARNING_RATE = 0.1  # from the literature\n",
    "    # smaller steps after the first experiment\n    LEARNING_RATE = 0.02\n    EPOCHS = 3\n",
)
V3_BY_ADMIN = V2.replace("EPOCHS = 3", "EPOCHS = 2")


@dataclass
class LineageGui:
    gui: GuiProcess
    database: Path
    data_root: Path


@pytest.fixture(scope="module")
def lineage_gui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LineageGui]:
    workdir = tmp_path_factory.mktemp("gui-lineage")
    state_dir, data_root = workdir / "state", workdir / "data"
    config = write_node_config(state_dir, data_root)
    for username, role in (("alice", "admin"), ("paula", "approver")):
        add_user(config, username, role, PASSWORDS[username], workdir)
    gui = GuiProcess(config, workdir / "gui.log").start()
    try:
        yield LineageGui(gui, state_dir / "node.sqlite3", data_root)
    finally:
        gui.stop()


def researcher_sends(lineage: LineageGui, source: str) -> str:
    services = open_node_services(lineage.database, lineage.data_root)
    try:
        return services.plans.request(source, "TumourLR", "tumour model", "researcher1").plan_id
    finally:
        services.close()


def row(page: Page, plan_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f"#plans tr[data-plan-id='{plan_id}']")


def test_new_version_is_reviewed_against_the_approved_one_and_supersedes_it(
    lineage_gui: LineageGui,
    page: Page,
    console_errors: ConsoleErrors,
    screenshots: Screenshots,
) -> None:
    url = lineage_gui.gui.url

    # Version 1 arrives and paula approves it.
    v1 = researcher_sends(lineage_gui, V1)
    sign_in(page, url, "paula")
    page.goto(url + "/plans?status=pending")
    expect(row(page, v1)).to_contain_text("first version")
    row(page, v1).locator("a", has_text="v1").click()
    expect(page.locator("#review")).to_have_count(0)  # nothing approved to compare with
    page.fill("#approve-form textarea[name=notes]", "Reads the table only.")
    page.click("#approve")
    expect(page.locator("#plan-status")).to_have_text("approved")
    page.click("#logout")

    # Version 2 arrives; alice reviews it from the pending list in one click.
    v2 = researcher_sends(lineage_gui, V2)
    sign_in(page, url, "alice")
    page.goto(url + "/plans?status=pending")
    expect(page.locator("#plans tr.version")).to_have_count(1)
    link = row(page, v2).locator("a.review-diff")
    expect(link).to_have_text("changes vs v1 (approved)")
    screenshots.take(page, "lineage-01-pending")
    link.click()
    expect(page.locator("h1")).to_contain_text("TumourLR version 2")
    expect(page.locator("main")).to_contain_text("From version 1 (approved, approved by paula)")
    diff = page.locator("#diff")
    expect(diff).to_contain_text("LEARNING_RATE = 0.02")
    expect(diff).to_contain_text("EPOCHS = 3")
    expect(diff).not_to_contain_text("smaller steps")  # comments do not run: not compared
    expect(page.locator(".added")).to_have_text("+2")
    expect(page.locator(".removed")).to_have_text("\N{MINUS SIGN}1")
    screenshots.take(page, "lineage-02-diff-against-approved")

    # The approve page shows the same diff above the full source, then approve.
    page.click("h1 a")
    expect(page.locator("#review-diff")).to_contain_text("LEARNING_RATE = 0.02")
    review_box = page.locator("#review").bounding_box()
    source_box = page.locator("#source").bounding_box()
    assert review_box is not None and source_box is not None
    assert review_box["y"] < source_box["y"]
    expect(page.locator("#approve")).to_have_text("Approve (replaces version 1)")
    screenshots.take(page, "lineage-03-approve-page")
    page.click("#approve")
    expect(page.locator("#plan-status")).to_have_text("approved")

    # The list: v1 superseded, v2 approved, each with who wrote and who decided.
    page.goto(url + "/plans")
    first, second = row(page, v1), row(page, v2)
    expect(first.locator(".badge")).to_have_text("superseded")
    expect(first.locator("td").nth(2)).to_have_text("researcher1")
    expect(first.locator(".decision")).to_contain_text("approved by paula")
    expect(second.locator(".badge")).to_have_text("approved")
    expect(second.locator("td").nth(2)).to_have_text("researcher1")
    expect(second.locator(".decision")).to_contain_text("approved by alice")
    expect(page.locator("#plans tr.lineage-head")).to_have_count(1)
    expect(page.locator("#plans tr.lineage-head")).to_contain_text("requested by researcher1")
    screenshots.take(page, "lineage-04-list")

    # A version alice writes in the GUI is hers: nobody requested it.
    page.goto(f"{url}/plans/{v2}")
    page.click("summary:text('Register a new version')")
    page.fill("form[action$='/update'] textarea[name=source]", V3_BY_ADMIN)
    page.click("form[action$='/update'] button[type=submit]")
    expect(page.locator("h1")).to_contain_text("version 3")
    expect(page.locator("#written-by")).to_contain_text("alice")
    expect(page.locator("#requested-by")).to_have_count(0)
    expect(page.locator("#review-diff")).to_contain_text("EPOCHS = 2")
    screenshots.take(page, "lineage-05-admin-version")

    assert console_errors == []
    assert page.request.get(url + "/favicon.ico").ok

    # Error pages keep the menu and sign-out; the browser's only complaint is the 404.
    page.goto(url + "/plans/plan-000000000000")
    expect(page.locator("h1")).to_have_text("No such training plan")
    expect(page.locator("nav")).to_contain_text("Training plans")
    expect(page.locator("#logout")).to_be_visible()
    assert len(console_errors) == 1 and "status of 404" in console_errors[0]
