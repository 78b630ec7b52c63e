"""The README's commands are real: every ``fedward ...`` line of its shell blocks names an
existing command with options it has, every ``make`` target exists, every local link
resolves, and nothing tells a newcomer to install from a package index fedward is not on."""

from __future__ import annotations

import re
import shlex
import warnings
from pathlib import Path

import click
import pytest

from fedward.cli import cli

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO / "README.md", REPO / "docs" / "operations.md"]
_BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def shell_lines(document: Path) -> list[str]:
    """Commands of the document's ``bash`` blocks, continuation lines joined."""
    lines: list[str] = []
    for block in _BLOCK.findall(document.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                lines.append(" ".join(shlex.quote(w) for w in words))
    return lines


def fedward_commands(document: Path) -> list[list[str]]:
    commands = []
    for line in shell_lines(document):
        for part in re.split(r"\s(?:&&|;)\s", line):
            words = shlex.split(part)
            while words and words[0] in ("sudo", "--preserve-env"):
                words = words[1:]
            if words and words[0] == "fedward":
                commands.append(words[1:])
    return commands


def resolve(args: list[str]) -> click.Command:
    """Parse ``args`` as the CLI would, without running anything; a value that does not
    fit this machine (a path that does not exist here) is fine, an unknown option is not."""
    command: click.Command = cli
    context: click.Context | None = None
    name = "fedward"
    while True:
        try:
            context = command.make_context(name, list(args), parent=context)
        except click.MissingParameter:
            raise
        except click.BadParameter:
            return command  # e.g. a folder of the example that does not exist here
        if not isinstance(command, click.Group):
            return command
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            rest = [*context.protected_args, *context.args]
        if not rest:
            return command
        name, found, args = command.resolve_command(context, rest)
        assert found is not None, rest
        command = found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_fedward_command_exists_with_the_options_shown(document: Path) -> None:
    commands = fedward_commands(document)
    assert len(commands) > 10
    for args in commands:
        if args in (["--version"], ["--help"]):
            continue
        try:
            resolve(args)
        except click.ClickException as exc:
            raise AssertionError(f"{document.name}: fedward {' '.join(args)}: {exc}") from exc


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_make_target_exists(document: Path) -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    used = {
        word
        for line in shell_lines(document)
        for part in re.split(r"\s(?:&&|;)\s", line)
        if (words := [w for w in shlex.split(part) if w != "sudo"]) and words[0] == "make"
        for word in words[1:]
        if "=" not in word and not word.startswith("-")
    }
    assert used and used <= targets, used - targets


@pytest.mark.parametrize(
    "document", [*DOCUMENTS, REPO / "docs" / "architecture.md", REPO / "CHANGELOG.md"]
)
def test_local_links_resolve(document: Path) -> None:
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", document.read_text()):
        assert (document.parent / target).exists(), f"{document.name} links to {target}"


def test_nothing_installs_from_a_package_index_fedward_is_not_on() -> None:
    for document in DOCUMENTS:
        for line in shell_lines(document):
            assert not re.search(r"pip install ['\"]?fedward\b", line), line


def test_the_readme_points_to_the_design_notes_in_the_repository() -> None:
    readme = (REPO / "README.md").read_text()
    design = readme.split("## Design", 1)[1].split("\n## ", 1)[0]
    assert "docs/architecture.md" in design and "shared notes" not in design
