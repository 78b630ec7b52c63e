"""No code in ``src/`` may turn received bytes into objects by running code.

pickle (and everything built on it: joblib, dill, cloudpickle, shelve, ``torch.load``,
``numpy.load(allow_pickle=True)``, ``pandas.read_pickle``), marshal, ``yaml.load`` and
``eval``/``exec`` can all execute code chosen by whoever wrote the bytes. The seed's
upload server let any VPN peer replace a pickled parameter file; fedward's parameters
are safetensors only. This test reads every module's syntax tree (nothing is imported)
and names each offender as ``file:line``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Importing these at all is refused: their whole purpose is unsafe deserialisation.
FORBIDDEN_MODULES = frozenset(
    {"pickle", "_pickle", "cPickle", "joblib", "dill", "cloudpickle", "marshal", "shelve"}
)

# Calls refused whatever their arguments (dotted names after resolving import aliases).
FORBIDDEN_CALLS = frozenset(
    {
        "eval",
        "exec",
        "builtins.eval",
        "builtins.exec",
        "torch.load",
        "torch.serialization.load",
        "yaml.load",
        "yaml.load_all",
        "yaml.unsafe_load",
        "yaml.unsafe_load_all",
        "yaml.full_load",
        "yaml.full_load_all",
        "pandas.read_pickle",
        "numpy.lib.format.read_array",
    }
)

# ``numpy.load`` is safe only with pickles refused (its default): flag any other value.
PICKLE_OPTIONAL_CALLS = frozenset({"numpy.load"})

DYNAMIC_IMPORTS = frozenset({"__import__", "importlib.import_module"})


@dataclass(frozen=True)
class Offence:
    path: Path
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _top_module(name: str) -> str:
    return name.split(".")[0]


class UnsafeDeserialisationFinder(ast.NodeVisitor):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.aliases: dict[str, str] = {}  # local name -> dotted name it stands for
        self.offences: list[Offence] = []

    def report(self, node: ast.AST, what: str) -> None:
        self.offences.append(Offence(self.path, getattr(node, "lineno", 0), what))

    # --- imports ------------------------------------------------------------------------

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if _top_module(alias.name) in FORBIDDEN_MODULES:
                self.report(node, f"import {alias.name}")
            local = alias.asname or _top_module(alias.name)
            self.aliases[local] = alias.name if alias.asname else local
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level == 0 and _top_module(module) in FORBIDDEN_MODULES:
            self.report(node, f"from {module} import ...")
        for alias in node.names:
            if node.level == 0 and module:
                self.aliases[alias.asname or alias.name] = f"{module}.{alias.name}"
        self.generic_visit(node)

    # --- calls --------------------------------------------------------------------------

    def dotted_name(self, node: ast.expr) -> str | None:
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        parts.append(self.aliases.get(node.id, node.id))
        return ".".join(reversed(parts))

    def visit_Call(self, node: ast.Call) -> None:
        name = self.dotted_name(node.func)
        if name is not None:
            self.check_call(node, name)
        self.generic_visit(node)

    def check_call(self, node: ast.Call, name: str) -> None:
        if name in FORBIDDEN_CALLS or _top_module(name) in FORBIDDEN_MODULES:
            self.report(node, f"call to {name}()")
        elif name in PICKLE_OPTIONAL_CALLS:
            for keyword in node.keywords:
                if keyword.arg == "allow_pickle" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    self.report(
                        node, f"call to {name}() with allow_pickle={ast.unparse(keyword.value)}"
                    )
                if keyword.arg is None:  # **options could carry allow_pickle=True
                    self.report(node, f"call to {name}() with **{ast.unparse(keyword.value)}")
        elif name in DYNAMIC_IMPORTS and node.args:
            target = node.args[0]
            module = target.value if isinstance(target, ast.Constant) else None
            if isinstance(module, str) and _top_module(module) in FORBIDDEN_MODULES:
                self.report(node, f"dynamic import of {module}")


def find_offences(root: Path) -> list[Offence]:
    offences: list[Offence] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        finder = UnsafeDeserialisationFinder(path.relative_to(root.parent))
        finder.visit(tree)
        offences.extend(finder.offences)
    return offences


# --- the rule -------------------------------------------------------------------------------


def test_src_has_python_files_to_check() -> None:
    assert len(list(SRC.rglob("*.py"))) > 20


def test_no_code_in_src_deserialises_by_running_code() -> None:
    offences = find_offences(SRC)
    assert not offences, "unsafe deserialisation in src/ (use safetensors / JSON):\n" + "\n".join(
        map(str, offences)
    )


# --- the checker catches what it should, and only that ----------------------------------------

PLANTED = """\
import pickle
import joblib as jl
from dill import loads
import cloudpickle, marshal
import shelve
import numpy as np
import torch
import yaml
import pandas as pd
from numpy import load as npload
import importlib


def receive(data, path, flag, options):
    a = pickle.loads(data)
    b = jl.load(path)
    c = torch.load(path)
    d = np.load(path, allow_pickle=True)
    e = npload(path, allow_pickle=flag)
    f = yaml.load(data)
    g = marshal.loads(data)
    h = eval(data)
    exec(data)
    i = pd.read_pickle(path)
    j = importlib.import_module("pickle")
    k = __import__("dill")
    m = np.load(path, **options)
    return a, b, c, d, e, f, g, h, i, j, k, m
"""

EXPECTED_PLANTED = [
    (1, "import pickle"),
    (2, "import joblib"),
    (3, "from dill import ..."),
    (4, "import cloudpickle"),
    (4, "import marshal"),
    (5, "import shelve"),
    (15, "call to pickle.loads()"),
    (16, "call to joblib.load()"),
    (17, "call to torch.load()"),
    (18, "call to numpy.load() with allow_pickle=True"),
    (19, "call to numpy.load() with allow_pickle=flag"),
    (20, "call to yaml.load()"),
    (21, "call to marshal.loads()"),
    (22, "call to eval()"),
    (23, "call to exec()"),
    (24, "call to pandas.read_pickle()"),
    (25, "dynamic import of pickle"),
    (26, "dynamic import of dill"),
    (27, "call to numpy.load() with **options"),
]

LOOKALIKES = """\
import ast
import json
import numpy as np
import yaml
from safetensors.numpy import load


def harmless(model, data, path, spec, module):
    model.eval()
    spec.loader.exec_module(module)
    a = np.load(path)
    b = np.load(path, allow_pickle=False)
    c = yaml.safe_load(data)
    d = ast.literal_eval("[1, 2]")
    e = json.loads(data)
    f = load(data)
    return a, b, c, d, e, f
"""


@pytest.fixture
def planted_tree(tmp_path: Path) -> Path:
    package = tmp_path / "src" / "planted"
    package.mkdir(parents=True)
    (package / "receiver.py").write_text(PLANTED, encoding="utf-8")
    (package / "harmless.py").write_text(LOOKALIKES, encoding="utf-8")
    return tmp_path / "src"


def test_the_checker_catches_every_planted_offence_with_its_line(planted_tree: Path) -> None:
    offences = find_offences(planted_tree)
    receiver = Path("src/planted/receiver.py")
    assert [(o.line, o.what) for o in offences if o.path == receiver] == EXPECTED_PLANTED


def test_the_checker_names_offenders_as_file_and_line(planted_tree: Path) -> None:
    first = find_offences(planted_tree)[0]
    assert str(first) == "src/planted/receiver.py:1: import pickle"


def test_the_checker_leaves_safe_lookalikes_alone(planted_tree: Path) -> None:
    assert [o for o in find_offences(planted_tree) if o.path.name == "harmless.py"] == []
