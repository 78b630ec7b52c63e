"""A training plan's source from a Python file, without importing it.

A researcher's ``Experiment`` sends ``plan_source(cls)``: the file's top-level imports
followed by the plan class, nothing else (``fedward.learning.plan_source``). The node
builds the same text from a file it reads — a plan file an admin registers, the default
plans fedward ships — so that registering the researcher's own file gives the digest the
researcher's requests carry, whatever else the file holds (a module docstring, a script
at the bottom). Reading instead of importing keeps torch out of the daemon: importing
the shipped torch plans would cost seconds and hundreds of MiB at every node start.
"""

from __future__ import annotations

import ast
import importlib.util
import textwrap

from fedward.errors import PlanError
from fedward.learning.plan_source import joined_plan_source, top_level_imports


def plan_source_from_text(file_text: str, class_name: str, filename: str = "<plan>") -> str:
    """The top-level imports of ``file_text`` and its class ``class_name``, as
    ``plan_source`` gives them for that class."""
    try:
        tree = ast.parse(file_text)
    except SyntaxError as exc:
        raise PlanError(f"{filename} is not valid Python: line {exc.lineno}: {exc.msg}") from exc
    imports = top_level_imports(tree, filename)
    # The last definition of the name is the one Python would bind.
    matches = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name]
    if not matches:
        classes = sorted(n.name for n in tree.body if isinstance(n, ast.ClassDef))
        raise PlanError(
            f"{filename} defines no top-level class {class_name!r}",
            hint="classes found: " + (", ".join(classes) or "none"),
        )
    found = matches[-1]
    first = found.decorator_list[0].lineno if found.decorator_list else found.lineno
    lines = file_text.splitlines(keepends=True)[first - 1 : found.end_lineno]
    class_text = textwrap.dedent("".join(lines))
    if not class_text.endswith("\n"):
        class_text += "\n"
    return joined_plan_source(imports, class_text)


def imported_packages(source: str) -> set[str]:
    """The top-level package names a plan source imports (``torch`` for ``torch.nn``)."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    names.discard("__future__")
    return names


def missing_packages(source: str) -> list[str]:
    """Packages the plan imports that this installation lacks (found without importing)."""
    return sorted(n for n in imported_packages(source) if importlib.util.find_spec(n) is None)
