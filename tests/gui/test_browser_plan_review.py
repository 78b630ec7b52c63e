"""Reviewing plans in the browser: a new version shows its diff, rejecting needs notes,
registering and deleting work, and a dataset can be deleted."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from fedward.node.services import open_node_services

from .conftest import Screenshots, sign_in
from .gui_process import PASSWORDS, GuiProcess, add_user, write_node_config

FIRST = """class CohortPlan:
    def train(self, data):
        return data.mean()
"""
SECOND = """class CohortPlan:
    def train(self, data):
        clipped = data.clip(0, 1)
        return clipped.mean()
"""


@dataclass
class ReviewGui:
    gui: GuiProcess
    database: Path
    data_root: Path


@pytest.fixture(scope="module")
def review_gui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewGui]:
    workdir = tmp_path_factory.mktemp("gui-review")
    state_dir, data_root = workdir / "state", workdir / "data"
    config = write_node_config(state_dir, data_root)
    (data_root / "cohort.csv").write_text("age,label\n50,1\n61,0\n47,1\n")
    for username, role in (("alice", "admin"), ("paula", "approver")):
        add_user(config, username, role, PASSWORDS[username], workdir)
    gui = GuiProcess(config, workdir / "gui.log").start()
    try:
        yield ReviewGui(gui, state_dir / "node.sqlite3", data_root)
    finally:
        gui.stop()


def request_plan(review: ReviewGui, source: str, class_name: str) -> str:
    services = open_node_services(review.database, review.data_root)
    try:
        return services.plans.request(source, class_name, "", "researcher2").plan_id
    finally:
        services.close()


def test_new_version_shows_what_changed_and_waits_for_approval(
    review_gui: ReviewGui, page: Page, screenshots: Screenshots
) -> None:
    url = review_gui.gui.url
    plan_id = request_plan(review_gui, FIRST, "CohortPlan")
    sign_in(page, url, "paula")
    page.goto(f"{url}/plans/{plan_id}")
    page.click("summary:text('Register a new version')")
    page.fill("form[action$='/update'] textarea[name=source]", SECOND)
    page.click("form[action$='/update'] button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("New version registered")
    expect(page.locator("#plan-status")).to_have_text("pending")
    page.click("#diff-link")
    diff = page.locator("#diff")
    expect(diff).to_contain_text("clipped = data.clip(0, 1)")
    expect(page.locator(".added")).to_have_text("+2")
    expect(page.locator(".removed")).to_have_text("\N{MINUS SIGN}1")
    screenshots.take(page, "plan-diff")
    page.goto(f"{url}/plans/{plan_id}")
    expect(page.locator("#plan-status")).to_have_text("superseded")
    expect(page.locator(".facts")).to_contain_text("superseded by")


def test_rejecting_needs_notes_that_the_plan_then_carries(
    review_gui: ReviewGui, page: Page, screenshots: Screenshots
) -> None:
    url = review_gui.gui.url
    plan_id = request_plan(review_gui, "class ReadsFiles:\n    pass\n", "ReadsFiles")
    sign_in(page, url, "paula")
    page.goto(f"{url}/plans/{plan_id}")
    page.evaluate("document.querySelector('#reject-form textarea').removeAttribute('required')")
    page.click("#reject")
    expect(page.locator(".flash.error")).to_contain_text("needs notes")
    page.fill("#reject-form textarea[name=notes]", "Opens files outside the dataset.")
    page.click("#reject")
    expect(page.locator("#plan-status")).to_have_text("rejected")
    expect(page.locator(".facts")).to_contain_text("Opens files outside the dataset.")
    screenshots.take(page, "plan-rejected")
    page.goto(f"{url}/plans?status=rejected")
    expect(page.locator("#plans")).to_contain_text("ReadsFiles")
    screenshots.take(page, "plans-rejected")


def test_admin_registers_a_plan_then_deletes_it(
    review_gui: ReviewGui, page: Page, screenshots: Screenshots
) -> None:
    url = review_gui.gui.url
    sign_in(page, url, "alice")
    page.goto(url + "/plans/new")
    page.fill("input[name=name]", "Local statistics")
    page.fill("input[name=class_name]", "LocalStats")
    page.fill(
        "textarea[name=source]", "class LocalStats:\n    def train(self):\n        return 0\n"
    )
    page.check("input[name=approve]")
    screenshots.take(page, "plan-register")
    page.click("#plan-form button[type=submit]")
    expect(page.locator("#plan-status")).to_have_text("approved")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:text('Delete plan')")
    expect(page.locator(".flash.ok")).to_contain_text("deleted")
    expect(page.locator("body")).not_to_contain_text("Local statistics")


def test_admin_deletes_a_dataset_after_confirming(review_gui: ReviewGui, page: Page) -> None:
    url = review_gui.gui.url
    sign_in(page, url, "alice")
    page.goto(url + "/datasets/new?path=cohort.csv")
    page.fill("input[name=name]", "Cohort")
    page.fill("input[name=tags]", "cohort-2024")
    page.click("#dataset-form button[type=submit]")
    expect(page.locator("#preview")).to_contain_text("61")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("button:text('Delete dataset')")
    expect(page.locator("h1")).to_contain_text("Cohort")  # dismissed: nothing happened
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:text('Delete dataset')")
    expect(page.locator(".flash.ok")).to_contain_text("deleted")
    expect(page.locator("body")).to_contain_text("No datasets yet.")
