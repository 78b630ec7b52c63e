"""Which dataset of which node an experiment trains on.

The nodes are found by a tag search, narrowed to the nodes the researcher named, and
each node contributes one dataset: the first it lists when several match (a warning
says which).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fedward.core.messages import DatasetSummary
from fedward.errors import FederationError
from fedward.researcher.federation import Federation

log = logging.getLogger("fedward.researcher")

SEARCH_TIMEOUT_S = 10.0


def find_datasets(
    federation: Federation, tags: Sequence[str], wanted_nodes: Sequence[str] | None
) -> dict[str, DatasetSummary]:
    """The dataset each online node offers for ``tags``; FederationError if none does."""
    federation.settle_presence()
    # Long, but a search ends as soon as every node known to be online answered.
    found = federation.search(list(tags), timeout_s=SEARCH_TIMEOUT_S)
    if wanted_nodes is not None:
        found = {n: d for n, d in found.items() if n in wanted_nodes}
    if not found:
        raise FederationError(
            f"no online node has a dataset with tags {list(tags)}",
            hint="check the nodes are started (fedward researcher nodes) and the tags",
        )
    chosen: dict[str, DatasetSummary] = {}
    for node_id, datasets in sorted(found.items()):
        if len(datasets) > 1:
            log.warning(
                "node %s has %d datasets with these tags; using %s",
                node_id,
                len(datasets),
                datasets[0].dataset_id,
            )
        chosen[node_id] = datasets[0]
    return chosen
