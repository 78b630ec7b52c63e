"""Every input the fuzzer ever crashed a parser with, replayed through its target.

``make fuzz`` copies each crashing input to ``tests/fuzz/regressions/<target>/``; once
the parser is fixed, the target returns normally on it, and this test keeps it so.
Found while the targets were written (all fixed):

- toml_config: a configuration file that is not UTF-8 escaped as UnicodeDecodeError;
  ``port = inf`` as OverflowError; a number or table where a path or text belongs
  (``state_dir = 5``) as TypeError.
- csv_table: a cell with a separator character (U+001C) that ``str.strip`` removes but
  ``float()`` does not, typed numeric then unreadable (ValueError); an integer past
  int64 typed int64 (OverflowError on load).
- upload_request: a Content-Length such as "\\x1e5" or "²" passed str.strip and
  str.isdigit but not int(): an answer 500 instead of 400.
- codec (by the property tests): ids and tags with a trailing newline were accepted,
  as msgspec's ``$`` matches before a final newline.

The seeds of each target run too: a target must accept the honest files it starts from.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.fuzz.run import INSTRUMENTED
from tests.fuzz.seeds import seeds
from tests.fuzz.targets import TARGETS

REGRESSIONS = Path(__file__).resolve().parents[1] / "fuzz" / "regressions"
SAVED = sorted(
    (folder.name, path)
    for folder in REGRESSIONS.iterdir()
    if folder.is_dir() and folder.name in TARGETS
    for path in folder.iterdir()
)


@pytest.mark.parametrize(("target", "path"), SAVED, ids=[f"{t}/{p.name[:20]}" for t, p in SAVED])
def test_a_saved_crash_no_longer_crashes_its_parser(target: str, path: Path) -> None:
    TARGETS[target](path.read_bytes())


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_seed_passes_its_target(target: str) -> None:
    for data in seeds(target):
        TARGETS[target](data)


@pytest.mark.parametrize("module", INSTRUMENTED)
def test_every_module_the_fuzzer_instruments_exists(module: str) -> None:
    # A module renamed or removed would stop ``make fuzz`` before its first input.
    assert importlib.util.find_spec(module) is not None, f"{module} is gone: update INSTRUMENTED"
