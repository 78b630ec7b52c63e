"""CSV tables: delimiter and header detection, validation, and loading into numpy.

The delimiter is sniffed among ``, ; TAB |`` (a one-column file has none and reads as
``,``). The first row is a header when some column is numeric below it but not in it;
in an all-text table, when its cells are distinct, non-empty names. Cells that are empty or
``NA``/``N/A``/``NaN``/``null``/``None`` are missing values; they read as NaN in
numeric columns. Column kinds use pandas' names (``int64``, ``float64``, ``object``) so
they read the same as in the seed system; an integer column with a missing value is
``float64``.

Files are read as UTF-8 (a byte-order mark is skipped) in two streaming passes, so a
large table is never held as Python strings.
"""

from __future__ import annotations

import _csv
import csv
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from fedward.errors import DatasetError
from fedward.learning.datasets.dataset_type import DatasetInfo, require_file

_SNIFF_CHARS = 64 * 1024
_HEADER_PROBE_ROWS = 50
_PREVIEW_ROWS = 5
_DELIMITERS = ",;\t|"
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})
_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity)", re.IGNORECASE)


@dataclass(frozen=True)
class CsvInfo:
    shape: tuple[int, int]
    columns: list[str]
    dtypes: dict[str, str]
    delimiter: str
    sample_count: int
    has_header: bool = True
    first_rows: list[list[str]] = field(default_factory=list)
    missing_counts: dict[str, int] = field(default_factory=dict)

    def as_dataset_info(self) -> DatasetInfo:
        return DatasetInfo(
            shape=list(self.shape),
            dtypes=dict(self.dtypes),
            sample_count=self.sample_count,
            preview={
                "columns": list(self.columns),
                "rows": [list(row) for row in self.first_rows],
                "delimiter": self.delimiter,
                "has_header": self.has_header,
                "missing_values": {k: v for k, v in self.missing_counts.items() if v},
            },
        )


@dataclass(frozen=True)
class _Layout:
    delimiter: str
    skip_initial_space: bool
    has_header: bool
    columns: list[str]


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_TOKENS


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _cell_kind(cell: str) -> str:
    text = cell.strip()
    if _INT.fullmatch(text):
        # Past int64 pandas reads text, and so do we: no int64 array can hold it.
        # (More than 20 characters cannot fit, and int() refuses past 4300 digits.)
        fits = len(text) <= 20 and _INT64_MIN <= int(text) <= _INT64_MAX
        return "int64" if fits else "object"
    if _FLOAT.fullmatch(text):
        return "float64"
    return "object"


_KIND_RANK = {"int64": 0, "float64": 1, "object": 2}


def _widen(current: str, cell: str) -> str:
    """The kind of a column that held ``current`` so far and now also holds ``cell``."""
    if current == "object" or is_missing(cell):
        return current
    kind = _cell_kind(cell)
    return kind if _KIND_RANK[kind] > _KIND_RANK[current] else current


def _reader(handle: Iterable[str], layout: _Layout) -> _csv.Reader:
    return csv.reader(
        handle, delimiter=layout.delimiter, skipinitialspace=layout.skip_initial_space, strict=True
    )


def _open_text(path: Path) -> TextIO:
    return path.open(encoding="utf-8-sig", newline="")


def _read_sample(path: Path) -> str:
    with _open_text(path) as handle:
        sample: str = handle.read(_SNIFF_CHARS)
        if len(sample) == _SNIFF_CHARS and "\n" in sample:
            sample = sample[: sample.rindex("\n") + 1]  # whole lines only
    if "\x00" in sample:
        raise DatasetError(f"{path} holds binary data, not a CSV table")
    if not sample.strip():
        raise DatasetError(f"{path} is empty")
    return sample


def _sniff_delimiter(sample: str, path: Path) -> tuple[str, bool]:
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS)
    except csv.Error:
        # The sniffer wants every probed row to agree; a single ragged row defeats it.
        # Take the delimiter most rows agree on, so the data pass can name the bad line.
        return _most_consistent_delimiter(sample, path), False
    return dialect.delimiter, bool(dialect.skipinitialspace)


def _most_consistent_delimiter(sample: str, path: Path) -> str:
    lines = [line for line in sample.splitlines(keepends=True) if line.strip()][:200]
    best: tuple[float, int, str] = (0.0, 1, ",")
    for delimiter in _DELIMITERS:
        try:
            counts = Counter(len(row) for row in csv.reader(lines, delimiter=delimiter) if row)
        except csv.Error:
            continue
        if not counts:
            continue
        fields, rows = counts.most_common(1)[0]
        share = rows / sum(counts.values())
        if fields > 1 and (share, fields) > best[:2]:
            best = (share, fields, delimiter)
    share, fields, delimiter = best
    if fields == 1 and any(d in line for line in lines for d in _DELIMITERS):
        raise DatasetError(
            f"cannot tell the delimiter of {path}",
            hint="use one of , ; TAB | consistently, with the same field count on every row",
        )
    if fields > 1 and share < 0.5:
        raise DatasetError(
            f"cannot tell the delimiter of {path}: rows do not split the same way",
            hint="use one of , ; TAB | consistently, with the same field count on every row",
        )
    return delimiter


def _detect_header(rows: list[list[str]]) -> bool:
    first, rest = rows[0], rows[1:]
    if not rest:
        return all(_cell_kind(cell) == "object" and not is_missing(cell) for cell in first)
    numeric_below = []
    for index in range(len(first)):
        kinds = {_cell_kind(r[index]) for r in rest if index < len(r) and not is_missing(r[index])}
        numeric_below.append(bool(kinds) and "object" not in kinds)
    if any(numeric_below):
        return any(
            numeric and not is_missing(cell) and _cell_kind(cell) == "object"
            for numeric, cell in zip(numeric_below, first, strict=False)
        )
    # An all-text table: csv.Sniffer.has_header guesses from cell lengths and is wrong on
    # small tables; a first row of distinct, non-empty names is a header in practice.
    names = [cell.strip() for cell in first]
    return all(names) and len(set(names)) == len(names)


def _column_names(first: list[str], has_header: bool, path: Path) -> list[str]:
    if not has_header:
        return [f"column_{index}" for index in range(len(first))]
    names = [cell.strip() or f"column_{index}" for index, cell in enumerate(first)]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DatasetError(
                f"{path} has two columns named {name!r}", hint="give every column its own name"
            )
        seen.add(name)
    return names


def _detect_layout(path: Path) -> _Layout:
    sample = _read_sample(path)
    delimiter, skip_space = _sniff_delimiter(sample, path)
    probe = _Layout(delimiter, skip_space, False, [])
    try:
        rows = [row for row in _reader(iter(sample.splitlines(keepends=True)), probe) if row]
    except csv.Error as exc:
        raise DatasetError(f"{path} is not a valid CSV table: {exc}") from exc
    rows = rows[:_HEADER_PROBE_ROWS]
    has_header = _detect_header(rows)
    return _Layout(delimiter, skip_space, has_header, _column_names(rows[0], has_header, path))


def _data_rows(path: Path, layout: _Layout) -> Iterator[list[str]]:
    """Every data row (blank lines skipped), each checked to have one field per column."""
    try:
        with _open_text(path) as handle:
            reader = _reader(handle, layout)
            if layout.has_header:
                next(reader, None)
            for row in reader:
                if not row:
                    continue
                if len(row) != len(layout.columns):
                    raise DatasetError(
                        f"{path.name}: line {reader.line_num} has {len(row)} fields, "
                        f"expected {len(layout.columns)}",
                        hint="every row needs one value per column (empty for a missing value)",
                    )
                yield row
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text", hint="save the table as UTF-8 CSV") from exc
    except csv.Error as exc:
        raise DatasetError(f"{path} is not a valid CSV table: {exc}") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc


def inspect_csv(path: Path) -> CsvInfo:
    """Validate a CSV table and describe it; DatasetError when it cannot be used."""
    return _inspect(Path(path))[1]


def _inspect(path: Path) -> tuple[_Layout, CsvInfo]:
    path = require_file(path, "CSV")
    try:
        layout = _detect_layout(path)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text", hint="save the table as UTF-8 CSV") from exc
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from exc
    kinds = ["int64"] * len(layout.columns)
    missing = [0] * len(layout.columns)
    first_rows: list[list[str]] = []
    count = 0
    for row in _data_rows(path, layout):
        count += 1
        if len(first_rows) < _PREVIEW_ROWS:
            first_rows.append(row)
        for index, cell in enumerate(row):
            if is_missing(cell):
                missing[index] += 1
            else:
                kinds[index] = _widen(kinds[index], cell)
    if count == 0:
        raise DatasetError(
            f"{path} has a header but no data rows", hint="add the data, or choose another file"
        )
    dtypes = {
        # A column with missing cells cannot stay integer once loaded (NaN is a float).
        name: "float64" if kind == "int64" and missing[index] else kind
        for index, (name, kind) in enumerate(zip(layout.columns, kinds, strict=True))
    }
    return layout, CsvInfo(
        shape=(count, len(layout.columns)),
        columns=list(layout.columns),
        dtypes=dtypes,
        delimiter=layout.delimiter,
        sample_count=count,
        has_header=layout.has_header,
        first_rows=first_rows,
        missing_counts=dict(zip(layout.columns, missing, strict=True)),
    )


def _target_index(columns: list[str], target_column: str | int | None, path: Path) -> int:
    if target_column is None:
        return len(columns) - 1
    if isinstance(target_column, bool) or not isinstance(target_column, int | str):
        raise DatasetError(f"target column must be a name or an index, got {target_column!r}")
    if isinstance(target_column, int):
        if not -len(columns) <= target_column < len(columns):
            raise DatasetError(
                f"target column {target_column} is out of range: {path.name} has "
                f"{len(columns)} columns"
            )
        return target_column % len(columns)
    if target_column not in columns:
        raise DatasetError(
            f"{path.name} has no column {target_column!r}",
            hint="columns: " + ", ".join(columns[:20]),
        )
    return columns.index(target_column)


def _parse_float(cell: str) -> float:
    # Stripped as ``_cell_kind`` strips it: str.strip knows more whitespace (such as the
    # separators U+001C..U+001F) than float() skips.
    return float("nan") if is_missing(cell) else float(cell.strip())


def load_csv_xy(
    path: Path, target_column: str | int | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(X, y, feature_names)``: X float64 (missing -> NaN), y int64/float64/str.

    Every feature column must be numeric; the target (default: the last column) may hold
    text labels but no missing value.
    """
    path = Path(path)
    layout, info = _inspect(path)
    columns = info.columns
    target = _target_index(columns, target_column, path)
    features = [index for index in range(len(columns)) if index != target]
    text_features = [columns[i] for i in features if info.dtypes[columns[i]] == "object"]
    if text_features:
        raise DatasetError(
            f"{path.name}: feature column(s) {', '.join(text_features[:5])} hold text",
            hint="encode them as numbers, or drop them from the table",
        )
    if info.missing_counts[columns[target]]:
        raise DatasetError(
            f"{path.name}: target column {columns[target]!r} has "
            f"{info.missing_counts[columns[target]]} missing value(s)"
        )
    features_array = np.empty((info.sample_count, len(features)), dtype=np.float64)
    labels: list[str] = []
    for row_index, row in enumerate(_data_rows(path, layout)):
        if row_index >= info.sample_count:
            raise DatasetError(f"{path} changed while it was being read")
        features_array[row_index] = [_parse_float(row[i]) for i in features]
        labels.append(row[target].strip())
    if len(labels) != info.sample_count:
        raise DatasetError(f"{path} changed while it was being read")
    y = _labels_array(labels, info.dtypes[columns[target]])
    return features_array, y, [columns[i] for i in features]


def _labels_array(labels: list[str], kind: str) -> np.ndarray:
    if kind == "int64":
        return np.array([int(v) for v in labels], dtype=np.int64)
    if kind == "float64":
        return np.array([float(v) for v in labels], dtype=np.float64)
    return np.array(labels, dtype=str)


def read_csv_records(path: Path) -> tuple[CsvInfo, list[list[str]]]:
    """Every data row as strings: for small tables such as demographics."""
    layout, info = _inspect(Path(path))
    return info, list(_data_rows(Path(path), layout))


def inspect_csv_dataset(path: Path) -> DatasetInfo:
    return inspect_csv(path).as_dataset_info()
