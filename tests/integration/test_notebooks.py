"""The getting-started notebooks run from top to bottom, as a researcher would run them.

Each starts its own local federation (broker, upload server, node processes) from the
notebook and stops it at the end; the test checks nothing of it is left running.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def run_notebook(name: str, workdir: Path) -> str:
    """Execute a copy of the notebook in ``workdir``; all text it printed."""
    shutil.copy(NOTEBOOKS / name, workdir / name)
    notebook = nbformat.read(workdir / name, as_version=4)
    # IPC sockets in the test's folder: the kernel needs no TCP port at all.
    kernel = KernelManager(kernel_name="python3", transport="ipc", ip=str(workdir / "kernel"))
    client = NotebookClient(
        notebook, km=kernel, timeout=600, resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    nbformat.write(notebook, workdir / name)  # executed copy, for a look after a failure
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            texts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(texts)


def processes_mentioning(path: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(path) in command:
                found.append(f"{proc.name}: {command}")
    return found


@pytest.mark.timeout(900)
def test_101_getting_started_reaches_high_held_out_accuracy_on_digits(tmp_path: Path) -> None:
    output = run_notebook("101_getting_started.ipynb", tmp_path)
    accuracy = float(re.search(r"held-out accuracy: ([0-9.]+)", output).group(1))  # type: ignore[union-attr]
    print(f"101: held-out accuracy {accuracy:.4f}")
    assert accuracy >= 0.90
    assert "online: ['hospital1', 'hospital2', 'hospital3']" in output
    assert "stopped" in output
    assert (tmp_path / "fedward-101" / "metrics.png").is_file()
    runs = tmp_path / "fedward-101" / "runs" / "getting-started"
    assert sorted(p.name for p in runs.iterdir()) == [
        "aggregate",
        "hospital1",
        "hospital2",
        "hospital3",
    ]
    assert processes_mentioning(tmp_path) == []


@pytest.mark.timeout(900)
def test_102_tabular_breast_cancer_runs_resumes_and_compares_models(tmp_path: Path) -> None:
    output = run_notebook("102_tabular_breast_cancer.ipynb", tmp_path)
    assert "resuming breast-cancer-lr after round 3" in output
    assert "round 6/6 done" in output
    assert re.search(r"logistic regression\s+0\.9", output)
    assert re.search(r"MLP, FedProx\s+0\.9", output)
    assert "stopped" in output
    assert processes_mentioning(tmp_path) == []


@pytest.mark.timeout(900)
def test_103_private_training_shows_accuracy_against_epsilon(tmp_path: Path) -> None:
    output = run_notebook("103_private_training.ipynb", tmp_path)
    print(output[output.index("noise") :])
    assert "hospital1: failed" in output and "require_secure_aggregation" in output
    baseline = float(re.search(r"no DP: held-out accuracy ([0-9.]+)", output).group(1))  # type: ignore[union-attr]
    assert baseline >= 0.9
    rows = re.findall(r"^\s+([0-9.]+)\s+([0-9.e+]+)\s+([0-9.]+)  hospital", output, re.M)
    epsilons = [float(e) for _, e, _ in rows]
    assert len(rows) == 3 and epsilons == sorted(epsilons, reverse=True)
    assert all(float(a) >= 0.6 for _, _, a in rows)
    assert "stopped before round" in output and "past max_epsilon 120" in output
    assert "researcher1 on" in output
    assert "stopped" in output
