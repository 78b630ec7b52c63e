"""Dataset pages speak plainly: an image folder shows thumbnails, a table's facts and
cells read as words (no ``True``, ``{}`` or Python lists), and refusals name tags as
a person writes them."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from playwright.sync_api import Page, expect

from fedward.node.services import open_node_services

from .conftest import ConsoleErrors, Screenshots, sign_in
from .gui_process import PASSWORDS, GuiProcess, add_user, write_node_config


def image_folder(root: Path) -> Path:
    folder = root / "scans"
    for label, shade in (("benign", 40), ("malignant", 200)):
        (folder / label).mkdir(parents=True)
        for number in range(2):
            Image.new("L", (64, 48), shade + number).save(folder / label / f"{number}.png")
    return folder


def test_image_thumbnails_and_plain_words_on_dataset_pages(
    tmp_path: Path, page: Page, console_errors: ConsoleErrors, screenshots: Screenshots
) -> None:
    state_dir, data_root = tmp_path / "state", tmp_path / "data"
    config = write_node_config(state_dir, data_root)
    add_user(config, "alice", "admin", PASSWORDS["alice"], tmp_path)
    (data_root / "table.csv").write_text("age,smoker,label\n50,yes,1\n61,,0\n47,no,1\n")
    services = open_node_services(state_dir / "node.sqlite3", data_root)
    try:
        scans = services.datasets.add("images", image_folder(data_root), "Scans", "scans")
        table = services.datasets.add("csv", data_root / "table.csv", "Table", "breast-cancer")
    finally:
        services.close()
    gui = GuiProcess(config, tmp_path / "gui.log").start()
    try:
        url = gui.url
        sign_in(page, url, "alice")
        page.goto(f"{url}/datasets/{scans.dataset_id}")
        thumbnails = page.locator("#thumbnails img")
        expect(thumbnails).to_have_count(4)
        for index in range(4):
            expect(thumbnails.nth(index)).to_have_js_property("complete", True)
            assert 0 < thumbnails.nth(index).evaluate("img => img.naturalWidth") <= 96
        expect(page.locator("#preview-facts")).to_contain_text("benign: 2, malignant: 2")
        screenshots.take(page, "dataset-image-thumbnails")
        assert page.request.get(f"{url}/datasets/{scans.dataset_id}/thumbnails/99").status == 404

        page.goto(f"{url}/datasets/{table.dataset_id}")
        facts = page.locator("#preview-facts")
        expect(facts).to_contain_text("Has header")
        for python in ("True", "False", "{}", "[", "None"):
            expect(facts).not_to_contain_text(python)
        expect(page.locator("#preview")).not_to_contain_text("None")
        screenshots.take(page, "dataset-csv-preview")

        # A tag conflict is explained with tags, not with a Python list.
        page.goto(url + "/datasets/new?path=table.csv")
        page.fill("input[name=name]", "Same table again")
        page.fill("input[name=tags]", "breast-cancer")
        page.click("#dataset-form button[type=submit]")
        error = page.locator(".flash.error")
        expect(error).to_contain_text("tags breast-cancer are the same as the tags breast-cancer")
        expect(error).not_to_contain_text("['")
        assert console_errors == []
    finally:
        gui.stop()
