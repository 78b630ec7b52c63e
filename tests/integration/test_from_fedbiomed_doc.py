"""``docs/from-fedbiomed.md`` ports Fed-BioMed's getting-started notebook cell by cell: its
fedward cells, run in order as one script, train on a real local federation.

The cells run as a file, not through ``exec``: a plan defined in a notebook is sent from
its cell's source, which ``inspect`` finds only in a real file (or a notebook cell).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.test_notebooks import processes_mentioning

DOC = Path(__file__).resolve().parents[2] / "docs" / "from-fedbiomed.md"


def fedward_cells(text: str) -> list[str]:
    """The ```python blocks whose last label before them is a line starting **fedward**
    (a line starting **Fed-BioMed** labels Fed-BioMed's code, not run)."""
    cells: list[str] = []
    label, block = "", None
    for line in text.splitlines(keepends=True):
        if block is not None:
            if line.startswith("```"):
                cells.append("".join(block))
                block, label = None, ""
            else:
                block.append(line)
        elif line.startswith("**fedward**"):
            label = "fedward"
        elif line.startswith("**Fed-BioMed**"):
            label = "fedbiomed"
        elif line.startswith("```python") and label == "fedward":
            block = []
        elif line.startswith("```"):
            label = ""
    return cells


def test_the_doc_has_a_fedward_cell_for_every_step() -> None:
    cells = fedward_cells(DOC.read_text())
    assert len(cells) == 8
    assert "class MyTrainingPlan(TorchTrainingPlan)" in cells[1]


@pytest.mark.timeout(600)
def test_the_ported_getting_started_notebook_runs(tmp_path: Path) -> None:
    script = tmp_path / "from_fedbiomed.py"
    script.write_text("\n\n".join(fedward_cells(DOC.read_text())))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=540
    )
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stderr[-5000:]
    out = done.stdout
    assert "online: ['hospital1', 'hospital2']" in out
    assert "{'hospital1': 'approved', 'hospital2': 'approved'}" in out
    assert "List the training rounds :  dict_keys([0, 1])" in out
    assert re.search(r"- hospital2 :\n\t\ttrain_s=[0-9.]+ seconds", out)
    assert "round-0002/params.safetensors" in out and "'fc2.weight'" in out
    assert "stopped" in out
    assert processes_mentioning(tmp_path) == []
