from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.privacy.sites import PrivateSites


@pytest.fixture
def start_sites(tmp_path: Path) -> Iterator[Callable[..., PrivateSites]]:
    started: list[PrivateSites] = []

    def start(count: int = 5, **options: object) -> PrivateSites:
        sites = PrivateSites(
            tmp_path / f"sites{len(started)}", [f"node{i}" for i in range(count)], **options
        )  # type: ignore[arg-type]
        started.append(sites)
        return sites

    yield start
    for sites in started:
        sites.close()
