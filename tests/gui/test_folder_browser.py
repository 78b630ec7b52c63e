"""The folder browser shows the data root and nothing outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedward.errors import AccessDenied, ConfigError, NotFound
from fedward.gui.folder_browser import FolderBrowser


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "site.a" / "scans").mkdir(parents=True)
    (root / "site.a" / "table.csv").write_text("x\n1\n")
    (root / ".hidden").write_text("secret")
    (tmp_path / "outside.csv").write_text("x\n1\n")
    (root / "escape").symlink_to(tmp_path)
    return root


def test_lists_folders_first_and_hides_dot_files(data_root: Path) -> None:
    listing = FolderBrowser(data_root).list("")
    assert [(e.name, e.is_dir) for e in listing.entries] == [
        ("escape", True),
        ("site.a", True),
    ]
    assert listing.parent_path is None
    inner = FolderBrowser(data_root).list("site.a")
    assert [e.relative_path for e in inner.entries] == ["site.a/scans", "site.a/table.csv"]
    assert inner.parent_path == ""
    assert inner.crumbs == [("site.a", "site.a")]
    assert FolderBrowser(data_root).list("site.a/scans").parent_path == "site.a"


@pytest.mark.parametrize("path", ["..", "../outside.csv", "site.a/../../outside.csv", "escape"])
def test_paths_leaving_the_root_are_refused(data_root: Path, path: str) -> None:
    with pytest.raises(AccessDenied, match="outside the data root"):
        FolderBrowser(data_root).resolve(path)


def test_absolute_paths_are_taken_relative_to_the_root(data_root: Path) -> None:
    with pytest.raises(NotFound):
        FolderBrowser(data_root).resolve(str(data_root.parent / "outside.csv"))
    assert (
        FolderBrowser(data_root).resolve("/site.a/table.csv")
        == (data_root / "site.a" / "table.csv").resolve()
    )


def test_without_a_data_root_nothing_can_be_browsed() -> None:
    browser = FolderBrowser(None)
    assert not browser.enabled
    with pytest.raises(ConfigError, match="no data root"):
        browser.list("")
