"""The node's paths, replaced by what they are, in text a researcher will read.

A failure's message can name files (a dataset that cannot be read, a plan that opened a
path): the researcher sees ``<dataset>`` or ``<job folder>`` instead. The worker masks
what it reports, and the daemon masks again, with its own list, because it trusts no
worker.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def node_places(dataset: Path, job_folder: Path, *others: tuple[Path, str]) -> dict[str, str]:
    """The usual places to mask: the dataset, its folder, the job folder, and ``others``."""
    places = {
        str(dataset): "<dataset>",
        str(dataset.parent): "<dataset folder>",
        str(job_folder): "<job folder>",
    }
    places.update({str(path): name for path, name in others})
    return places


def mask_paths(text: str, places: Mapping[str, str]) -> str:
    """``text`` with each place (longest first, so a file wins over its folder) replaced."""
    for location in sorted(places, key=len, reverse=True):
        if location not in ("/", ".", ""):
            text = text.replace(location, places[location])
    return text
