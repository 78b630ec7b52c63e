"""``lab run``: the demo experiment across the lab, every message through WireGuard.

Each node gets its share of the breast-cancer table in its site folder, registers it
(``fedward node dataset add``) and starts its daemon (``fedward node start``) in its own
namespace, with nothing but its enrolment folder's ``fedward.env`` as settings. Then the
researcher runs the experiment (``fedward.lab.experiment``) from its namespace. The node
daemons keep running until ``lab down``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from fedward.demo.breast_cancer import TAGS
from fedward.demo.data import breast_cancer_split
from fedward.errors import ConfigError
from fedward.lab.deploy import Progress, peer_folder, spawn_recorded
from fedward.lab.netns import fedward_command, run_in
from fedward.lab.state import LabState
from fedward.vpn.app_credentials import read_app_env
from fedward.vpn.layout import PeerFolder

EXPERIMENT_TIMEOUT_S = 600.0
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def site_env(state: LabState, component: str) -> dict[str, str]:
    """A component's whole environment: its ``fedward.env`` and nothing of the caller's."""
    folder = PeerFolder(peer_folder(state, component))
    env = {"PATH": _SYSTEM_PATH, "HOME": str(folder.path.parent), "LANG": "C.UTF-8"}
    env.update(read_app_env(folder))
    if component.startswith("node"):
        env["FEDWARD_NODE_DIR"] = str(folder.path.parent / "state")
        env["FEDWARD_DATA_ROOT"] = str(folder.path.parent / "data")
    return env


def _start_node(state: LabState, component: str, share: Path) -> None:
    env = site_env(state, component)
    data = Path(env["FEDWARD_DATA_ROOT"]) / "breast_cancer.csv"
    data.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    shutil.copyfile(share, data)
    add = ["node", "dataset", "add", "--type", "csv", "--path", str(data)]
    add += ["--name", "breast cancer (Wisconsin)", "--tags", ",".join(TAGS)]
    namespace = state.topology.namespace(component)
    run_in(namespace, fedward_command(*add), env=env)
    spawn_recorded(state, f"node-{component}", component, fedward_command("node", "start"), env)


def lab_run(lab_dir: Path, *, rounds: int = 2, progress: Progress | None = None) -> str:
    """Run the experiment; return the researcher's output (rounds and final accuracy)."""
    state = LabState.load(lab_dir)
    if not state.ready:
        raise ConfigError(f"the lab in {lab_dir} is not ready", hint="fedward lab down, then up")
    node_ids = state.topology.node_names
    started = {p.name for p in state.processes}
    if progress:
        progress("nodes")
    split = breast_cancer_split(state.lab_dir / "data", len(node_ids))
    for component, share in zip(node_ids, split.node_files, strict=True):
        if f"node-{component}" not in started:
            _start_node(state, component, share)
    if progress:
        progress("experiment")
    command = [sys.executable, "-m", "fedward.lab.experiment", "--nodes", ",".join(node_ids)]
    return run_in(
        state.topology.namespace("researcher"),
        [*command, "--rounds", str(rounds)],
        env=site_env(state, "researcher"),
        timeout_s=EXPERIMENT_TIMEOUT_S,
    )
