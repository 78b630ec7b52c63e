"""``lab run``: a federated experiment with three nodes, every byte through WireGuard."""

from __future__ import annotations

import pytest
from lab_harness import Lab

from fedward.lab.experiment import ACCURACY_LABEL
from fedward.lab.run import lab_run
from fedward.vpn.status import interface_status

pytestmark = pytest.mark.root
SOME_KIB = 4096  # far above what keepalives (32 bytes every 25 s) could explain


def _transfer(lab: Lab, component: str) -> tuple[int, int]:
    (peer,) = interface_status(lab.state.topology.wg_interface(component))
    return peer.received_bytes, peer.sent_bytes


def test_an_experiment_with_three_nodes_completes_through_wireguard(lab: Lab) -> None:
    components = ["mqtt", "restful", "researcher", "node1", "node2", "node3"]
    before = {c: _transfer(lab, c) for c in components}

    output = lab_run(lab.state.lab_dir, rounds=2)

    rounds = [line.split() for line in output.splitlines() if line.split()[:1] in (["1"], ["2"])]
    assert len(rounds) == 2, output
    assert all(len(row) == 1 + 3 + 2 for row in rounds), output  # a metric from every node
    accuracy = float(output.rsplit(ACCURACY_LABEL, 1)[1].split()[0])
    assert accuracy > 0.8, output
    for component in components:
        received, sent = _transfer(lab, component)
        assert received - before[component][0] > SOME_KIB, component
        assert sent - before[component][1] > SOME_KIB, component
