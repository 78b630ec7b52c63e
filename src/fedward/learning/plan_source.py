"""A training plan as source text: extracted on the researcher, loaded on the node.

What travels is the plan's *file imports* followed by the plan *class*, nothing else:
module-level script code (data loading, an experiment run, prints) never reaches a
hospital, and the node hashes and runs exactly that text. A plan therefore keeps its
helpers inside the class or in an installed package it imports.

In a notebook the "file" of a class is the cell that defined it, so that cell must hold
the imports the plan needs.

A node runs the plan's *canonical* text (``fedward.core.plan_digest``): the daemon writes
it to a file (``write_canonical_plan``) and the worker imports that file with
``importlib`` (``load_plan_file``; never ``exec``/``eval`` of strings in our code), so
tracebacks, ``inspect`` and ``dataclasses`` see a real module, and what runs is exactly
what was hashed.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.machinery
import importlib.util
import inspect
import itertools
import linecache
import sys
import textwrap
from pathlib import Path
from typing import Any

from fedward.core.plan_digest import normalise_source, plan_text
from fedward.errors import PlanError
from fedward.learning.plan import TrainingPlan
from fedward.storage.atomic import atomic_write_text

_MODULE_PREFIX = "fedward_loaded_plan_"
_load_serial = itertools.count(1)


def plan_source(cls: type[TrainingPlan]) -> str:
    """The text a researcher sends for ``cls``: its file's top-level imports + the class."""
    if not (isinstance(cls, type) and issubclass(cls, TrainingPlan)):
        raise PlanError(f"{cls!r} is not a TrainingPlan subclass")
    if cls.__qualname__ != cls.__name__:
        raise PlanError(
            f"plan class {cls.__qualname__!r} is nested in another definition",
            hint="define the plan class at the top level of its file",
        )
    try:
        class_text = textwrap.dedent(inspect.getsource(cls))
        filename = inspect.getsourcefile(cls) or inspect.getfile(cls)
    except (OSError, TypeError) as exc:
        raise PlanError(
            f"cannot find the source of plan class {cls.__name__!r} ({exc})",
            hint="define the plan in a .py file or a notebook cell, not in an interactive shell",
        ) from exc
    file_text = "".join(linecache.getlines(filename))
    try:
        file_tree = ast.parse(file_text) if file_text else ast.Module(body=[], type_ignores=[])
    except SyntaxError as exc:
        raise PlanError(f"cannot parse {filename}: line {exc.lineno}: {exc.msg}") from exc
    imports = top_level_imports(file_tree, filename)
    _refuse_module_level_names(file_tree, class_text, cls.__name__)
    return joined_plan_source(imports, class_text)


def top_level_imports(tree: ast.Module, filename: str) -> list[ast.stmt]:
    """The file's top-level import statements; PlanError for a relative import."""
    imports: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level:
            raise PlanError(
                f"{filename} uses a relative import (line {node.lineno}) that cannot work "
                "once the plan is sent to a node",
                hint="import from the installed package by its full name",
            )
        if isinstance(node, ast.Import | ast.ImportFrom):
            imports.append(node)
    return imports


def joined_plan_source(imports: list[ast.stmt], class_text: str) -> str:
    """The text that travels: the imports, two blank lines, the class."""
    header = "\n".join(ast.unparse(node) for node in imports)
    return f"{header}\n\n\n{class_text}" if header else class_text


def _refuse_module_level_names(tree: ast.Module, class_text: str, class_name: str) -> None:
    """Fail on the researcher's side, not on a node, when the class needs what stays behind."""
    left_behind: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name != class_name:
                left_behind.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                left_behind.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    class_tree = ast.parse(class_text)
    local_names = _names_bound_inside(class_tree)
    used = {
        n.id
        for n in ast.walk(class_tree)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    missing = sorted((used & left_behind) - local_names)
    if missing:
        raise PlanError(
            f"plan class {class_name!r} uses module-level name(s) {', '.join(missing)} "
            "that are not sent with the plan",
            hint="move them into the class, or import them from an installed package",
        )


def _names_bound_inside(tree: ast.AST) -> set[str]:
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    return bound


def source_file_name(source: str) -> str:
    """``plan_<digest-prefix>.py``: the same bytes always land in the same file."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    return f"plan_{digest[:16]}.py"


def write_canonical_plan(source: str, folder: Path) -> tuple[Path, str]:
    """Write the canonical text of ``source`` (what the digest binds) into ``folder``;
    returns the file and the sha256 of its bytes. PlanError if it cannot be normalised."""
    return write_plan_file(normalise_source(source), folder)


def write_plan_file(canonical: str, folder: Path) -> tuple[Path, str]:
    """``write_canonical_plan`` for text that is canonical already (a node's cached plan):
    normalising takes milliseconds per job, and the worker checks the fixed point again
    before it imports the file (``load_plan_file``)."""
    path = Path(folder) / source_file_name(canonical)
    data = canonical.encode("utf-8")
    if not path.is_file() or path.read_bytes() != data:
        atomic_write_text(path, canonical)
    return path, hashlib.sha256(data).hexdigest()


def load_plan_class(source: str, class_name: str, workdir: Path) -> type[TrainingPlan]:
    """Write the canonical text of ``source`` under ``workdir``, import it, return the class
    (what a node does, in one call: for tests and local runs)."""
    path, sha256 = write_canonical_plan(source, workdir)
    return load_plan_file(path, sha256, class_name)


def load_plan_file(path: Path, sha256: str, class_name: str) -> type[TrainingPlan]:
    """Import the canonical plan file ``path`` and return its plan class.

    The file must hash to ``sha256`` and be canonical text (UTF-8, a fixed point of
    normalisation, no encoding declaration), so what Python imports is byte for byte what
    the node hashed and approved. Every failure (a missing package, an error raised while
    the module runs, a missing or wrong class) becomes a PlanError whose message says
    why, without the traceback, which could carry node paths.
    """
    if not class_name.isidentifier():
        raise PlanError(f"plan class name {class_name!r} is not a Python identifier")
    data = Path(path).read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise PlanError("plan file changed after approval; refusing to run it")
    text = plan_text(data)
    if normalise_source(text) != text:
        raise PlanError("plan file is not in canonical form; refusing to run it")
    module = _import_file(Path(path))
    found = getattr(module, class_name, None)
    if found is None:
        raise PlanError(f"training plan source defines no {class_name!r}")
    if not (isinstance(found, type) and issubclass(found, TrainingPlan)):
        raise PlanError(f"{class_name!r} in the training plan is not a TrainingPlan subclass")
    if inspect.isabstract(found):
        missing = ", ".join(sorted(getattr(found, "__abstractmethods__", ())))
        raise PlanError(f"plan class {class_name!r} does not implement: {missing}")
    return found


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the file's own bytes, never a ``__pycache__`` entry beside it: a cached
    bytecode file is not what was approved."""

    def get_code(self, fullname: str) -> Any:
        path = self.get_filename(fullname)
        return self.source_to_code(self.get_data(path), path)


def _import_file(path: Path) -> object:
    # One module name per load, so two experiments (or two versions of a plan) loaded in
    # the same worker never replace each other in sys.modules.
    module_name = f"{_MODULE_PREFIX}{path.stem}_{next(_load_serial)}"
    loader = _SourceOnlyLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, path, loader=loader)
    if spec is None or spec.loader is None:
        raise PlanError(f"cannot import training plan file {path.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:
        sys.modules.pop(module_name, None)
        missing = exc.name or str(exc)
        raise PlanError(
            f"training plan imports {missing!r}, which is not available on this node",
            hint="use packages the node has installed",
        ) from exc
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise PlanError(f"training plan is not valid Python: line {exc.lineno}: {exc.msg}") from exc
    # Module code is foreign: anything it raises is a plan failure, reported by type and
    # message only.
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise PlanError(f"training plan failed while loading: {type(exc).__name__}: {exc}") from exc
    return module
