"""The node's datasets: add (validated), list, search by tags, preview, delete.

Rules (REFERENCE.md, "Node"):

- A dataset is added only if its path exists, is readable, lies inside the data root
  when one is configured, its content reads as the declared type, and it is not empty.
- Tag conflict: a new dataset whose tag set is a subset or a superset of an existing
  dataset's is refused, because a search for one would also return the other and the
  researcher could not tell which data a node trains on.
- ``search(tags)`` returns the datasets that carry every requested tag.

Every refused input leaves the registry unchanged.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from fedward.core.ids import new_id, validate_id
from fedward.core.messages import TEXT_CONTROLS
from fedward.errors import DatasetError, NotFound
from fedward.node.services.dataset_inspection import DatasetInspector, LearningInspector
from fedward.node.services.dataset_paths import resolve_dataset_path
from fedward.node.services.free_text import checked_text
from fedward.storage.node_records import AuditEntry, DatasetRecord, utc_now
from fedward.storage.node_stores import DatasetStore

TAG_PATTERN = re.compile(rf"^[^\t\n\r{TEXT_CONTROLS},]{{1,64}}\Z")  # the protocol's Tag
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 20_000
MAX_TAGS = 64
MAX_FROM_FILE_BYTES = 1 << 20
FROM_FILE_KEYS = frozenset({"data_type", "path", "name", "tags", "description", "options"})
MAX_OPTIONS_CHARS = 20_000
# Options whose value is a file the reader opens (a medical folder's demographics CSV):
# held to the same rules as the dataset path, and stored resolved.
PATH_OPTIONS = frozenset({"demographics"})
ADMIN = "admin"


def parse_tags(tags: Sequence[str] | str) -> list[str]:
    """Tags from a list or a comma-separated string: trimmed, de-duplicated, validated."""
    items = tags.split(",") if isinstance(tags, str) else list(tags)
    cleaned: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise DatasetError(f"tags must be strings, got {item!r}")
        tag = item.strip()
        if not TAG_PATTERN.fullmatch(tag):
            raise DatasetError(
                f"invalid tag {item!r}",
                hint="1 to 64 characters, no commas or control characters",
            )
        if tag not in cleaned:
            cleaned.append(tag)
    if not cleaned:
        raise DatasetError("a dataset needs at least one tag", hint="researchers find data by tags")
    if len(cleaned) > MAX_TAGS:
        raise DatasetError(f"a dataset may carry at most {MAX_TAGS} tags")
    return cleaned


def _listed(tags: set[str]) -> str:
    """Tags as a person writes them, for messages shown in the GUI and the CLI."""
    return ", ".join(sorted(tags))


def refuse_tag_conflicts(tags: Sequence[str], existing: Sequence[DatasetRecord]) -> None:
    new = set(tags)
    for record in existing:
        old = set(record.tags)
        if new <= old or new >= old:
            relation = (
                "the same as" if new == old else "a subset of" if new < old else "a superset of"
            )
            raise DatasetError(
                f"tags {_listed(new)} are {relation} the tags {_listed(old)} of dataset "
                f"“{record.name}” ({record.dataset_id})",
                hint="a search must find one dataset per node: choose tags that neither "
                "contain nor are contained in another dataset's tags",
            )


class DatasetService:
    def __init__(
        self,
        store: DatasetStore,
        data_root: Path | None,
        *,
        inspector: DatasetInspector | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self.data_root = data_root
        self._inspector = inspector or LearningInspector()
        self._clock = clock

    def data_types(self) -> list[str]:
        return self._inspector.data_types()

    def add(
        self,
        data_type: str,
        path: Path | str,
        name: str,
        tags: Sequence[str] | str,
        description: str = "",
        *,
        options: Mapping[str, Any] | None = None,
        by: str = ADMIN,
    ) -> DatasetRecord:
        """Validate and store a dataset; ``options`` are passed to the type's reader."""
        if data_type not in self.data_types():
            raise DatasetError(
                f"unknown dataset type {data_type!r}",
                hint="one of " + ", ".join(self.data_types()),
            )
        name = checked_text(
            name, "dataset name", MAX_NAME_CHARS, required=True, one_line=True, error=DatasetError
        )
        description = checked_text(
            description, "dataset description", MAX_DESCRIPTION_CHARS, error=DatasetError
        )
        tag_list = parse_tags(tags)
        checked_options = self._checked_options(options or {})
        resolved = resolve_dataset_path(path, self.data_root)
        found = self._inspector.inspect(data_type, resolved, checked_options)
        if found.sample_count <= 0:
            raise DatasetError(f"dataset at {resolved} holds no samples")
        record = DatasetRecord(
            dataset_id=new_id("dataset"),
            name=name,
            data_type=data_type,
            tags=tag_list,
            description=description,
            path=resolved,
            shape=found.shape,
            dtypes=found.dtypes,
            sample_count=found.sample_count,
            created_at=self._clock(),
            options=checked_options,
        )
        audit = AuditEntry(
            at=record.created_at,
            kind="dataset_added",
            actor=by,
            subject=record.dataset_id,
            detail=f"{data_type} dataset {name!r} tags={tag_list} samples={found.sample_count}",
        )
        self._store.add(record, lambda existing: refuse_tag_conflicts(tag_list, existing), audit)
        return record

    def add_from_file(self, json_path: Path | str, *, by: str = ADMIN) -> DatasetRecord:
        """Add the dataset a JSON file describes; relative paths are relative to that file."""
        json_path = Path(json_path).expanduser()
        spec = _read_spec(json_path)
        unknown = sorted(set(spec) - FROM_FILE_KEYS)
        if unknown:
            raise DatasetError(
                f"unknown key(s) {unknown} in {json_path}",
                hint="allowed keys: " + ", ".join(sorted(FROM_FILE_KEYS)),
            )
        missing = sorted({"data_type", "path", "name", "tags"} - set(spec))
        if missing:
            raise DatasetError(f"missing key(s) {missing} in {json_path}")
        for key in ("data_type", "path", "name", "description"):
            if key in spec and not isinstance(spec[key], str):
                raise DatasetError(f"{key!r} in {json_path} must be a string")
        if not isinstance(spec["tags"], str | list):
            raise DatasetError(f"'tags' in {json_path} must be a list or a comma-separated string")
        options = spec.get("options", {})
        if not isinstance(options, dict):
            raise DatasetError(f"'options' in {json_path} must be a JSON object")
        for key in PATH_OPTIONS & set(options):
            if isinstance(options[key], str):
                options[key] = str(json_path.parent / options[key])
        return self.add(
            spec["data_type"],
            json_path.parent / spec["path"],
            spec["name"],
            spec["tags"],
            spec.get("description", ""),
            options=options,
            by=by,
        )

    def list(self) -> list[DatasetRecord]:
        return self._store.list()

    def get(self, dataset_id: str) -> DatasetRecord:
        record = self._store.get(validate_id(dataset_id, kind="dataset id"))
        if record is None:
            raise NotFound(
                f"no dataset with id {dataset_id!r}", hint="'fedward node dataset list' shows them"
            )
        return record

    def search(self, tags: Sequence[str]) -> builtins.list[DatasetRecord]:
        return self._store.search(list(tags))

    def delete(self, dataset_id: str, *, by: str = ADMIN) -> None:
        record = self.get(dataset_id)
        audit = self._audit("dataset_deleted", by, record.dataset_id, repr(record.name))
        if not self._store.delete(record.dataset_id, audit):
            raise NotFound(f"no dataset with id {dataset_id!r}")

    def delete_all(self, *, by: str = ADMIN) -> int:
        return self._store.delete_all(self._audit("datasets_cleared", by, "", "every dataset"))

    def checked(self, dataset_id: str) -> DatasetRecord:
        """The record with its path and file options re-checked now, just before a use.

        The file system may have changed since the dataset was added (a symlink swapped
        to point outside the data root, a file removed): ``DatasetError`` says so.
        """
        record = self.get(dataset_id)
        return replace(
            record,
            path=resolve_dataset_path(record.path, self.data_root),
            options=self._checked_options(record.options),
        )

    def checked_path(self, dataset_id: str) -> Path:
        """``checked(dataset_id).path``."""
        return self.checked(dataset_id).path

    def preview(self, dataset_id: str) -> dict[str, Any]:
        """What ``dataset show`` prints: the stored facts and a fresh look at the content."""
        record = self.checked(dataset_id)
        found = self._inspector.inspect(record.data_type, record.path, record.options)
        return {
            "shape": found.shape,
            "dtypes": found.dtypes,
            "sample_count": found.sample_count,
            **found.preview,
        }

    def _checked_options(self, options: Mapping[str, Any]) -> dict[str, Any]:
        checked = _checked_options(options)
        for key in PATH_OPTIONS & set(checked):
            if not isinstance(checked[key], str):
                raise DatasetError(f"dataset option {key!r} must be a file path")
            checked[key] = str(resolve_dataset_path(checked[key], self.data_root))
        return checked

    def _audit(self, kind: str, actor: str, subject: str, detail: str) -> AuditEntry:
        return AuditEntry(at=self._clock(), kind=kind, actor=actor, subject=subject, detail=detail)


def _checked_options(options: Mapping[str, Any]) -> dict[str, Any]:
    if not all(isinstance(key, str) and key.isidentifier() for key in options):
        raise DatasetError(f"dataset option names must be identifiers, got {sorted(options)}")
    try:
        encoded = json.dumps(dict(options))
    except (TypeError, ValueError) as exc:
        raise DatasetError("dataset options must be JSON values (text, numbers, lists)") from exc
    if len(encoded) > MAX_OPTIONS_CHARS:
        raise DatasetError(f"dataset options are longer than {MAX_OPTIONS_CHARS} characters")
    return dict(json.loads(encoded))


def _read_spec(json_path: Path) -> dict[str, Any]:
    try:
        with json_path.open("rb") as handle:
            raw = handle.read(MAX_FROM_FILE_BYTES + 1)
    except OSError as exc:
        raise DatasetError(f"cannot read {json_path}: {exc.strerror}") from exc
    if len(raw) > MAX_FROM_FILE_BYTES:
        raise DatasetError(f"{json_path} is larger than {MAX_FROM_FILE_BYTES} bytes")
    try:
        spec = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{json_path} is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise DatasetError(f"{json_path} must hold a JSON object")
    return spec
