"""Browse the node's data root from the GUI, and nothing outside it.

Every path the browser gets is relative to the data root; it is resolved (``..`` and
symlinks followed) and refused unless the result is still inside the root, so neither
``../../etc`` nor a symlink pointing out of the root shows anything. Hidden entries
(dot files) are not listed. The dataset service checks the chosen path again on add.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fedward.errors import AccessDenied, ConfigError, NotFound

MAX_ENTRIES = 500


@dataclass(frozen=True)
class FolderEntry:
    name: str
    relative_path: str
    is_dir: bool
    size_bytes: int | None


@dataclass(frozen=True)
class FolderListing:
    relative_path: str  # "" for the root itself
    parent_path: str | None
    entries: list[FolderEntry]
    truncated: bool

    @property
    def crumbs(self) -> list[tuple[str, str]]:
        """(name, relative path) for each folder from the root down to this one."""
        parts = PurePosixPath(self.relative_path).parts if self.relative_path else ()
        return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


class FolderBrowser:
    def __init__(self, data_root: Path | None) -> None:
        self._root = data_root

    @property
    def enabled(self) -> bool:
        return self._root is not None

    @property
    def root(self) -> Path:
        if self._root is None:
            raise ConfigError(
                "this node has no data root, so the GUI cannot browse or add datasets",
                hint="set data_root in the node configuration (or FEDWARD_DATA_ROOT)",
            )
        try:
            return self._root.expanduser().resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            raise ConfigError(f"the data root {self._root} does not exist") from exc

    def resolve(self, relative_path: str) -> Path:
        """The absolute path for ``relative_path``, or ``AccessDenied`` if it leaves the root."""
        root = self.root
        cleaned = relative_path.strip().lstrip("/")
        if "\x00" in cleaned:
            raise AccessDenied("a path with a NUL character")
        try:
            resolved = (root / cleaned).resolve(strict=True)
        except FileNotFoundError as exc:
            raise NotFound(f"{cleaned or '/'} does not exist in the data root") from exc
        except (OSError, RuntimeError) as exc:
            raise NotFound(f"{cleaned} cannot be opened: {exc}") from exc
        if not resolved.is_relative_to(root):
            raise AccessDenied(
                f"{cleaned} is outside the data root",
                hint="only files under the node's data root can be added",
            )
        return resolved

    def list(self, relative_path: str = "") -> FolderListing:
        folder = self.resolve(relative_path)
        if not folder.is_dir():
            raise NotFound(f"{relative_path} is not a folder")
        root = self.root
        here = "" if folder == root else folder.relative_to(root).as_posix()
        entries: list[FolderEntry] = []
        truncated = False
        try:
            with os.scandir(folder) as scan:
                for item in sorted(scan, key=lambda e: (not _is_dir(e), e.name.lower())):
                    if item.name.startswith("."):
                        continue
                    if len(entries) >= MAX_ENTRIES:
                        truncated = True
                        break
                    is_dir = _is_dir(item)
                    entries.append(
                        FolderEntry(
                            name=item.name,
                            relative_path=f"{here}/{item.name}" if here else item.name,
                            is_dir=is_dir,
                            size_bytes=None if is_dir else _size(item),
                        )
                    )
        except OSError as exc:
            raise AccessDenied(f"cannot list {here or '/'}: {exc.strerror}") from exc
        parent: str | None = None
        if here:
            parent_path = PurePosixPath(here).parent.as_posix()
            parent = "" if parent_path == "." else parent_path
        return FolderListing(here, parent, entries, truncated)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _size(entry: os.DirEntry[str]) -> int | None:
    try:
        return entry.stat().st_size
    except OSError:
        return None
