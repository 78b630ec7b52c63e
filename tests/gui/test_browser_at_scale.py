"""Long histories in a 1366 px wide browser window: the security log with 10,000 events
fits the window, its filters wrap, each time stays on one line, and it pages back to
the start; the jobs list pages too."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from fedward.node.services import open_node_services
from fedward.storage.node_records import AuditEntry
from fedward.storage.sqlite_audit import insert_audit_entry

from .conftest import ConsoleErrors, Screenshots, sign_in
from .gui_process import PASSWORDS, GuiProcess, add_user, write_node_config

EVENT_COUNT = 10_000
KINDS = ("login", "login_failed", "plan_decision", "job_started", "job_finished")
DIGEST = "sha256:" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def entry(number: int, start: datetime) -> AuditEntry:
    kind = KINDS[number % len(KINDS)]
    return AuditEntry(
        at=start + timedelta(seconds=number),
        kind=kind,
        actor=f"researcher{number % 7}",
        subject=f"plan-{number:012x}",
        # Long unbroken words, as real details have (digests, paths): they must wrap.
        detail=f"event {number}: approved: TumourLR (TumourLR, requested) {DIGEST} "
        f"notes: {'reviewed-' * 20}{number}",
    )


@pytest.fixture(scope="module")
def busy_gui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuiProcess]:
    workdir = tmp_path_factory.mktemp("gui-log-at-scale")
    state_dir, data_root = workdir / "state", workdir / "data"
    config = write_node_config(state_dir, data_root)
    add_user(config, "alice", "admin", PASSWORDS["alice"], workdir)
    services = open_node_services(state_dir / "node.sqlite3", data_root)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    try:
        with services.database.write() as connection:  # one transaction, not 10,000
            for number in range(EVENT_COUNT):
                insert_audit_entry(connection, entry(number, start))
    finally:
        services.close()
    gui = GuiProcess(config, workdir / "gui.log").start()
    try:
        yield gui
    finally:
        gui.stop()


@pytest.fixture
def wide_page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    context.set_default_timeout(20_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def fits_the_window(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def lines_of(page: Page, selector: str) -> int:
    return int(
        page.evaluate(
            """(selector) => {
                const range = document.createRange();
                range.selectNodeContents(document.querySelector(selector));
                const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
                return tops.size;
            }""",
            selector,
        )
    )


def test_ten_thousand_events_fit_the_window_and_page_back(
    busy_gui: GuiProcess, wide_page: Page, screenshots: Screenshots
) -> None:
    page, url = wide_page, busy_gui.url
    console_errors = ConsoleErrors().watch(page)
    sign_in(page, url, "alice")
    page.goto(url + "/security")
    rows = page.locator("#events tbody tr")
    expect(rows).to_have_count(100)
    # The sign-in just now is the newest event; the seeded ones follow, newest first.
    expect(rows.nth(1)).to_contain_text(f"event {EVENT_COUNT - 1}:")
    assert fits_the_window(page)
    assert lines_of(page, "#events tbody tr:first-child td:first-child") == 1
    filters = page.locator("#event-filters")
    assert filters.evaluate("e => e.scrollWidth <= e.clientWidth")
    screenshots.take(page, "security-log-10000")

    page.click("#older-page")
    expect(rows.first).to_contain_text(f"event {EVENT_COUNT - 100}:")
    assert fits_the_window(page)
    page.goto(url + "/security?before=150")
    expect(rows).to_have_count(100)
    page.click("#older-page")
    expect(rows).to_have_count(49)  # events 1..49 (ids start at 1)
    expect(page.locator("#pager")).to_contain_text("end of the log")
    page.click("#newest-page")
    expect(rows).to_have_count(100)

    page.click("#event-filters a:text-is('plan decision')")
    expect(page.locator("#event-filters a.active")).to_have_text("plan decision")
    expect(rows.first).to_contain_text("plan decision")
    page.click("#older-page")
    expect(rows.first).to_contain_text("plan decision")
    assert "kind=plan_decision" in page.url
    assert fits_the_window(page)
    assert console_errors == []


def test_jobs_page_back_through_a_long_history(
    tmp_path: Path, wide_page: Page, screenshots: Screenshots
) -> None:
    state_dir, data_root = tmp_path / "state", tmp_path / "data"
    config = write_node_config(state_dir, data_root)
    add_user(config, "alice", "admin", PASSWORDS["alice"], tmp_path)
    services = open_node_services(state_dir / "node.sqlite3", data_root)
    try:
        for round_index in range(120):
            job_id = services.jobs.start("exp-1", round_index, "researcher1", "dataset-1", DIGEST)
            services.jobs.finish(job_id, "succeeded", metrics={"loss": 1 / (round_index + 1)})
    finally:
        services.close()
    gui = GuiProcess(config, tmp_path / "gui.log").start()
    try:
        page = wide_page
        sign_in(page, gui.url, "alice")
        page.goto(gui.url + "/jobs")
        rows = page.locator("table.jobs tbody tr")
        expect(rows).to_have_count(50)
        page.click("#older-page")
        expect(rows).to_have_count(50)
        page.click("#older-page")
        expect(rows).to_have_count(20)
        expect(page.locator("#pager")).to_contain_text("first job reached")
        assert fits_the_window(page)
        page.click("#newer-page")
        expect(page).to_have_url(gui.url + "/jobs?page=1")
    finally:
        gui.stop()
