"""Training-plan source as HTML: highlighted Python, and a diff between two versions.

Which text to show and compare is the node's decision (``fedward.node.services.
plan_review``: the canonical text that runs); this module only turns it into HTML.

Pygments escapes everything it is given, so the HTML it returns is safe to insert into a
page as it is (the templates mark it ``Markup``); nothing else in the GUI bypasses
autoescaping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer, PythonLexer

from fedward.node.services.plan_review import count_changes, unified_lines

CSS_CLASS = "source"


def _formatter(*, line_numbers: bool) -> HtmlFormatter:
    return HtmlFormatter(cssclass=CSS_CLASS, linenos="table" if line_numbers else False)


def highlighted_python(source: str) -> Markup:
    return Markup(highlight(source, PythonLexer(), _formatter(line_numbers=True)))  # noqa: S704


@dataclass(frozen=True)
class SourceDiff:
    html: Markup
    added: int
    removed: int

    @property
    def identical(self) -> bool:
        return self.added == 0 and self.removed == 0


def highlighted_diff(lines: Sequence[str]) -> Markup:
    text = "".join(lines)
    return Markup(highlight(text, DiffLexer(), _formatter(line_numbers=False)))  # noqa: S704


def source_diff(old: str, new: str, old_label: str, new_label: str) -> SourceDiff:
    lines = unified_lines(old, new, old_label, new_label)
    added, removed = count_changes(lines)
    return SourceDiff(highlighted_diff(lines), added, removed)


def stylesheet() -> str:
    """The CSS for highlighted code, served as ``/static/source.css``."""
    return str(_formatter(line_numbers=False).get_style_defs(f".{CSS_CLASS}"))
