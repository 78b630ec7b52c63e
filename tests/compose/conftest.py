"""The compose deployment test (make compose-test): real images, real containers.

Not part of `make test`: it needs a Docker engine and compose (scripts/compose-engine sets
them up) and builds images. It runs when FEDWARD_COMPOSE_TEST=1, which scripts/compose-test
sets; otherwise pytest does not even collect them (make test stays engine-free).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.compose.compose import REPO

ENABLED = os.environ.get("FEDWARD_COMPOSE_TEST") == "1"
TIMINGS: dict[str, float] = {}
RESULTS = REPO / "benchmarks" / "results" / "compose.md"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if not ENABLED and collection_path.name.startswith("test_"):
        return True
    return None


class Stopwatch:
    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        self.start = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        TIMINGS[self.name] = time.monotonic() - self.start


@pytest.fixture(scope="session")
def stopwatch() -> type[Stopwatch]:
    return Stopwatch


@pytest.fixture(scope="session")
def base_image() -> str:
    return os.environ.get("BASE_IMAGE", "fedward/python:3.11-bookworm")


@pytest.fixture(scope="session", autouse=True)
def report_timings() -> Iterator[None]:
    yield
    if not ENABLED or not TIMINGS:
        return
    out = os.environ.get("FEDWARD_COMPOSE_TIMINGS")
    if out:
        Path(out).write_text(
            "".join(f"{name}\t{seconds:.0f}\n" for name, seconds in TIMINGS.items())
        )
