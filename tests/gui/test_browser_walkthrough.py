"""The whole story in a real browser, against a real node daemon.

A broker, the upload server and one node process run on loopback (``LocalFederation``);
the GUI is a ``fedward gui serve`` process on the same node database. The administrator
signs in, adds a CSV dataset through the folder browser, approves the training plan a
researcher submitted over MQTT, sees the jobs after the researcher's training rounds,
and signs out. Every page is photographed into ``test-artifacts/gui/``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from fedward.core.messages import ApprovalRequest, PlanStatusReply
from fedward.core.plan_digest import plan_digest
from fedward.demo.breast_cancer import demo_training_args
from fedward.demo.data import breast_cancer_split
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plan_source import plan_source
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.researcher import Experiment, FedAvg

from .conftest import ConsoleErrors, Screenshots, sign_in
from .gui_process import PASSWORDS, GuiProcess, add_user

NODE = "node1"
TAGS = ["breast-cancer", "gui-walkthrough"]


@pytest.fixture(scope="module")
def federation_with_gui(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[LocalFederation, GuiProcess]]:
    workdir = tmp_path_factory.mktemp("gui-federation")
    data_root = workdir / "data"
    split = breast_cancer_split(data_root, 1)
    # No shipped default plans: the researcher's plan must be reviewed by a person.
    node_env = {"FEDWARD_DATA_ROOT": str(data_root), "ALLOW_DEFAULT_TRAINING_PLANS": "false"}
    federation = LocalFederation(workdir, node_ids=[NODE], node_env=node_env)
    federation.split = split  # type: ignore[attr-defined]
    federation.start()
    gui = GuiProcess(federation.nodes[NODE].config_file, workdir / "gui.log", env=node_env)
    try:
        add_user(federation.nodes[NODE].config_file, "alice", "admin", PASSWORDS["alice"], workdir)
        gui.start()
        federation.start_nodes()
        yield federation, gui
    finally:
        gui.stop()
        federation.stop()


def researcher_submits_plan(federation: LocalFederation) -> PlanStatusReply:
    researcher = federation.researcher()
    source = plan_source(SGDClassifierPlan)
    blob = researcher.blobs.put_bytes(source.encode("utf-8"), readers=[NODE])
    request = ApprovalRequest(
        request_id=researcher.new_request_id(),
        plan_blob=blob,
        plan_digest=plan_digest(source),
        plan_class=SGDClassifierPlan.__name__,
        description="Logistic regression on the breast-cancer table, 2 rounds.",
    )
    answers = list(researcher.ask({NODE: request}, timeout_s=30))
    assert len(answers) == 1
    reply = answers[0].reply
    assert isinstance(reply, PlanStatusReply), reply
    return reply


def researcher_trains(federation: LocalFederation, rounds: int) -> Experiment:
    split = federation.split  # type: ignore[attr-defined]
    experiment = Experiment(
        tags=TAGS,
        training_plan=SGDClassifierPlan,
        model_args={"n_features": len(split.feature_names), "classes": split.classes},
        training_args=demo_training_args(),
        rounds=rounds,
        aggregator=FedAvg(),
        nodes=[NODE],
        round_timeout_s=120,
        federation=federation.researcher(),
    )
    experiment.run()
    return experiment


def test_admin_adds_dataset_approves_researcher_plan_and_sees_the_training_jobs(
    federation_with_gui: tuple[LocalFederation, GuiProcess],
    page: Page,
    console_errors: ConsoleErrors,
    screenshots: Screenshots,
) -> None:
    federation, gui = federation_with_gui

    # Not signed in: the dashboard sends us to the login page.
    page.goto(gui.url + "/")
    expect(page).to_have_url(f"{gui.url}/login?next=%2F")
    screenshots.take(page, "01-login")

    sign_in(page, gui.url, "alice")
    expect(page.locator("h1")).to_contain_text(NODE)
    expect(page.locator("#connectivity")).to_contain_text("broker")
    # The real broker and upload server of the federation are up.
    expect(page.locator("#connectivity .badge.ok")).to_have_count(2)
    screenshots.take(page, "02-dashboard")

    # Add the CSV dataset through the folder browser (restricted to the data root).
    page.click("nav a:text-is('Datasets')")
    page.click("#add-dataset")
    expect(page.locator("#folder-browser")).to_contain_text(f"{NODE}/")
    page.click(f"#folder-browser a:text-is('{NODE}/')")
    page.click("#folder-browser a:text-is('breast_cancer.csv')")
    expect(page.locator("#dataset-path")).to_have_value(f"{NODE}/breast_cancer.csv")
    page.select_option("select[name=data_type]", "csv")
    page.fill("input[name=name]", "Breast cancer (Wisconsin)")
    page.fill("input[name=tags]", ", ".join(TAGS))
    page.fill("textarea[name=description]", "Tabular, one row per patient.")
    screenshots.take(page, "03-dataset-add-folder-browser")
    page.click("#dataset-form button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("added")
    expect(page.locator("#preview th").first).to_be_visible()
    screenshots.take(page, "04-dataset-preview")
    page.click("nav a:text-is('Datasets')")
    expect(page.locator("#datasets")).to_contain_text("Breast cancer (Wisconsin)")
    screenshots.take(page, "05-datasets")

    # A researcher submits the training plan for review, over MQTT, to the node daemon.
    reply = researcher_submits_plan(federation)
    assert reply.status == "pending"

    page.click("nav a:text-is('Training plans')")
    page.click("a:text-is('pending (1)')")
    expect(page.locator("#plans")).to_contain_text("researcher1")
    screenshots.take(page, "06-plans-pending")
    page.click("#plans a:text-is('SGDClassifierPlan')")
    expect(page.locator("#plan-status")).to_have_text("pending")
    expect(page.locator(".code .source")).to_contain_text("class SGDClassifierPlan")
    screenshots.take(page, "07-plan-source")
    page.fill("#approve-form textarea[name=notes]", "Reviewed: reads the table, no I/O.")
    page.click("#approve")
    expect(page.locator("#plan-status")).to_have_text("approved")
    expect(page.locator(".facts")).to_contain_text("approved by alice")
    screenshots.take(page, "08-plan-approved")

    # The researcher now trains two rounds; the node runs both jobs.
    researcher_trains(federation, rounds=2)

    page.click("nav a:text-is('Jobs')")
    rows = page.locator("table.jobs tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("table.jobs .badge.succeeded")).to_have_count(2)
    expect(page.locator("table.jobs")).to_contain_text("researcher1")
    expect(page.locator("table.jobs")).to_contain_text("Breast cancer (Wisconsin)")
    screenshots.take(page, "09-jobs")
    rows.first.locator("a").click()
    expect(page.locator("#metrics-chart svg")).to_be_visible()
    expect(page.locator("#rounds-chart svg polyline").first).to_be_attached()
    screenshots.take(page, "10-job-metrics")

    page.click("nav a:text-is('Security log')")
    events = page.locator("#events")
    expect(events).to_contain_text("login")
    expect(events).to_contain_text("approved: SGDClassifierPlan")
    screenshots.take(page, "11-security-log")

    page.click("nav a:text-is('Users')")
    page.fill("#create-user input[name=username]", "victor")
    page.select_option("#create-user select[name=role]", "viewer")
    page.fill("#create-user input[name=password]", PASSWORDS["victor"])
    page.fill("#create-user input[name=password_again]", PASSWORDS["victor"])
    page.click("#create-user button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("victor created")
    screenshots.take(page, "12-users")

    page.click("nav a:text-is('Dashboard')")
    expect(page.locator("table.jobs .badge.succeeded")).to_have_count(2)
    screenshots.take(page, "13-dashboard-after-training")

    page.click("#logout")
    expect(page).to_have_url(gui.url + "/login")
    page.goto(gui.url + "/jobs")
    expect(page).to_have_url(f"{gui.url}/login?next=%2Fjobs")
    assert console_errors == []


def test_dataset_path_outside_the_data_root_is_not_browsable(
    federation_with_gui: tuple[LocalFederation, GuiProcess], page: Page
) -> None:
    _, gui = federation_with_gui
    sign_in(page, gui.url, "alice")
    page.goto(gui.url + "/datasets/new?dir=../../..")
    expect(page.locator("#folder-browser .flash.error")).to_contain_text("outside the data root")
    expect(page.locator("#folder-browser")).to_contain_text(f"{NODE}/")
    assert "secrets" not in page.locator("#folder-browser").inner_text()
